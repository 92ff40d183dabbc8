"""What an ops engineer reads of a running Cobro: logs (text or JSON, never a customer's
address or number), metrics (Prometheus) and health endpoints."""
