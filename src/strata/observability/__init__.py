"""Metrics, and later traces and logs, for every stage of the request path."""
