"""Traces built from request records: W3C context, spans, the in-process store, OTLP export."""
