"""What operators see: Prometheus metrics and structured (JSON/text) logs with audit."""
