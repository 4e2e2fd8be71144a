"""Training utilities for Strata's bundled demo models (synthetic corpus and trainer)."""
