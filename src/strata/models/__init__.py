"""Model backends: transformers causal LMs and embedders, and plain Python models."""
