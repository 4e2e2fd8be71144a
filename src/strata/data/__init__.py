"""Data and features: the streaming feature store (and, beside it, the artifact store)."""
