"""The model registry: versions of model folders stored content-addressed, stages, promote and rollback.

``strata.registry.reference`` is light (the spec imports it); ``strata.registry.service`` holds the store.
"""
