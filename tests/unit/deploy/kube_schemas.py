"""Offline validation of rendered manifests against the official schemas.

Core objects: the Kubernetes OpenAPI schemas kubernetes-validate bundles, in their strict variant
(unknown fields are errors, as with `kubectl apply`'s strict field validation). RayCluster:
KubeRay's CRD schema (a trimmed copy in schemas/, see its header) whose pod templates resolve to
the same bundled Kubernetes definitions.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate.utils import all_versions, major_minor
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

RAYCLUSTER_SCHEMA = Path(__file__).parent / "schemas" / "ray.io_rayclusters.v1.trimmed.yaml"
RAYCLUSTER_SCHEMA_ID = "https://kubernetes.io/api/ray.io/v1/raycluster"
# The oldest and the newest Kubernetes release the installed kubernetes-validate has schemas for.
KUBERNETES_VERSIONS = (major_minor(all_versions()[0]), major_minor(all_versions()[-1]))


def strict(schema: Any) -> Any:
    """``additionalProperties: false`` on every object schema that lists its properties."""
    if isinstance(schema, dict):
        schema = {key: strict(value) for key, value in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


@cache
def _kubernetes_definitions(version: str) -> dict[str, Any]:
    full = next(v for v in all_versions() if major_minor(v) == version)
    folder = resources.files("kubernetes_validate") / "kubernetes-json-schema" / f"v{full}-local-strict"
    return json.loads((folder / "_definitions.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@cache
def _raycluster_validator(version: str) -> jsonschema.Draft202012Validator:
    schema = {"$id": RAYCLUSTER_SCHEMA_ID, **strict(yaml.safe_load(RAYCLUSTER_SCHEMA.read_text(encoding="utf-8")))}
    registry: Registry = Registry().with_resources(
        [
            (RAYCLUSTER_SCHEMA_ID, Resource.from_contents(schema, default_specification=DRAFT202012)),
            ("https://kubernetes.io/api/_definitions.json", Resource.from_contents(_kubernetes_definitions(version))),
        ]
    )
    return jsonschema.Draft202012Validator(schema, registry=registry)


def validate(manifest: dict[str, Any], version: str) -> None:
    """Raise jsonschema.ValidationError (or a kubernetes-validate error) if ``manifest`` is invalid."""
    if manifest["apiVersion"] == "ray.io/v1" and manifest["kind"] == "RayCluster":
        _raycluster_validator(version).validate(manifest)
    else:
        kubernetes_validate.validate(manifest, version, strict=True)
