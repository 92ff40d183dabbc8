"""What customers send back: SMS replies (opt-out and opt-in keywords, free replies)."""
