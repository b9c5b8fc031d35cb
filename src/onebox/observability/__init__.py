"""Observability: ``GET /metrics`` (Prometheus), the gauges sampled each second, and the
recent samples behind the admin System page."""
