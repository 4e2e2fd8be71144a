"""``strata deploy kubernetes``: the manifests that run an app in distributed mode on Kubernetes.

What is rendered, in the order ``kubectl apply`` should create it:

1. ``ConfigMap`` - the app spec (with ``runtime: ray``), mounted at /etc/strata/app.yaml;
2. ``RayCluster`` (KubeRay, ray.io/v1) - the head and the worker groups the replicas run on;
3. ``Deployment`` + ``Service`` - the gateways (`strata serve`), as Ray clients of that cluster;
4. ``HorizontalPodAutoscaler`` - more gateways when requests queue (needs a metrics adapter);
5. ``PodDisruptionBudget`` - gateways leave one at a time on node drains;
6. ``Deployment`` - workflow job workers (`strata worker`), unless ``workers`` is 0;
7. ``NetworkPolicy`` x2 - the app's pods take traffic from each other only, the gateways' HTTP port from anyone.

The Secrets with the store URLs and the admin key are not rendered (they hold credentials):
docs/guides/kubernetes.md says how to make them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from strata.access.safety import check_bind
from strata.deploy.autoscaling import gateway_autoscaler, gateway_disruption_budget
from strata.deploy.names import AppNames, dns1123_label
from strata.deploy.network import app_internal_policy, gateway_ingress_policy
from strata.deploy.raycluster import ray_cluster
from strata.deploy.workloads import app_spec_config_map, gateway_deployment, gateway_service, worker_deployment
from strata.errors import SpecError
from strata.spec import AppSpec

Manifest = dict[str, Any]

LISTEN_ALL = "0.0.0.0"


class KubernetesOptions(BaseModel):
    """What the app spec does not say about a Kubernetes deployment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image: str = Field(
        min_length=1,
        pattern=r"^\S+$",
        description="Container image with Strata (and its distributed extra) for gateways, workers and Ray nodes.",
    )
    namespace: str = Field(
        default="default",
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Namespace every object goes in (a DNS-1123 label).",
    )
    gateways: int = Field(default=2, ge=1, le=256, description="Gateway pods to start with; the HPA's minimum.")
    max_gateways: int | None = Field(
        default=None, ge=1, le=1024, description="Most gateway pods the HPA starts; None: four times 'gateways'."
    )
    workers: int = Field(default=1, ge=0, le=256, description="Workflow worker pods; 0 renders no worker Deployment.")
    ray_version: str = Field(
        pattern=r"^\d+\.\d+(\.\d+)?$",
        description="Ray version in the image (KubeRay's rayVersion); it must match the Ray the image installs.",
    )

    @model_validator(mode="after")
    def _gateway_bounds_ordered(self) -> KubernetesOptions:
        if self.max_gateways is not None and self.max_gateways < self.gateways:
            raise ValueError(f"max_gateways ({self.max_gateways}) is below gateways ({self.gateways})")
        return self

    @property
    def gateway_ceiling(self) -> int:
        return self.max_gateways if self.max_gateways is not None else 4 * self.gateways


def _check_servable(spec: AppSpec) -> None:
    """Problems a pod would only show by crash-looping, named now."""
    if spec.gateway.port == 0:
        raise SpecError("gateway.port: 0 picks a free port at start; a pod needs a fixed one (e.g. 8000)")
    check_bind(LISTEN_ALL, spec.access.enabled)  # gateways listen on the pod's address, reachable by others


def app_spec_yaml(spec: AppSpec) -> str:
    """The spec as the pods read it: only what differs from the defaults, with ``runtime: ray``."""
    distributed = spec.model_copy(update={"runtime": "ray"})
    return yaml.safe_dump(distributed.model_dump(mode="json", exclude_defaults=True), sort_keys=False)


def render_kubernetes(spec: AppSpec, options: KubernetesOptions) -> list[Manifest]:
    """Every object, in apply order (see the module docstring)."""
    _check_servable(spec)
    names = AppNames.for_app(spec.name)
    namespace = options.namespace
    spec_yaml = app_spec_yaml(spec)
    manifests = [
        app_spec_config_map(names, namespace, spec_yaml),
        ray_cluster(spec, names, namespace=namespace, image=options.image, ray_version=options.ray_version),
        gateway_deployment(
            spec, names, namespace=namespace, image=options.image, replicas=options.gateways, spec_yaml=spec_yaml
        ),
        gateway_service(names, namespace),
        gateway_autoscaler(
            spec, names, namespace=namespace, min_replicas=options.gateways, max_replicas=options.gateway_ceiling
        ),
        gateway_disruption_budget(names, namespace),
    ]
    if options.workers:
        manifests.append(
            worker_deployment(
                names, namespace=namespace, image=options.image, replicas=options.workers, spec_yaml=spec_yaml
            )
        )
    manifests += [app_internal_policy(names, namespace), gateway_ingress_policy(names, namespace, spec.gateway.port)]
    return manifests


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (the ConfigMap's app spec) as readable ``|`` blocks, not one escaped line."""


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_BlockDumper.add_representer(str, _represent_text)


def manifest_yaml(manifest: Manifest) -> str:
    return yaml.dump(manifest, Dumper=_BlockDumper, sort_keys=False)


def manifests_yaml(manifests: list[Manifest]) -> str:
    """One YAML stream, ``---`` between objects: what ``kubectl apply -f -`` reads."""
    return yaml.dump_all(manifests, Dumper=_BlockDumper, sort_keys=False, explicit_start=True)


def manifest_file_name(index: int, manifest: Manifest) -> str:
    # The index keeps `kubectl apply -f DIR` (which goes by file name) in apply order.
    kind = dns1123_label(manifest["kind"])
    return f"{index:02d}-{kind}-{manifest['metadata']['name']}.yaml"


def write_manifests(manifests: list[Manifest], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, manifest in enumerate(manifests):
        path = folder / manifest_file_name(index, manifest)
        path.write_text(manifest_yaml(manifest), encoding="utf-8")
        paths.append(path)
    return paths
