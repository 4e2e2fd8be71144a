"""Prompt orchestration (layer 2): reading files into chunks, retrieval, and the context template."""
