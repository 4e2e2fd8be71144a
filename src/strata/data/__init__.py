"""Data and features (layer 4): the artifact store and the streaming feature store."""

from strata.data.artifacts import ArtifactStore, StoredArtifact

__all__ = ["ArtifactStore", "StoredArtifact"]
