"""The HTTP gateway: OpenAI-compatible API, health, readiness and metrics."""
