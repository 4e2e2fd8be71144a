"""The model registry: versions of model folders stored content-addressed, stages, promote and rollback."""

from strata.registry.service import REGISTRY_PREFIX, ModelRegistry, Reference

__all__ = ["REGISTRY_PREFIX", "ModelRegistry", "Reference"]
