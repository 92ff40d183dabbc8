"""Temporal activities: every side effect lives here."""
