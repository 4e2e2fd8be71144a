"""The KubeRay ``RayCluster`` an app's replicas run on: a head, and worker groups shaped by the
deployments' resources.

One worker group per kind of node the deployments need: ``cpu`` for CPU-only deployments, ``gpu``
(``gpu-a100``, ... per accelerator type) for deployments that ask for GPUs. A worker pod is sized
to hold one replica of the largest deployment of its group; its group's replica bounds are the
pods the deployments' replica bounds need (no packing across deployments, so they are an upper
bound). GPU groups declare ``nvidia.com/gpu`` limits, and every group declares the custom
resources (and ``accelerator_type:X``) its deployments ask for in ``rayStartParams``: that is what
lets Ray and its autoscaler place those replicas on that group only.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from strata.deploy.names import AppNames, dns1123_label, labels
from strata.deploy.quantities import cpu_quantity, fits, memory_quantity
from strata.spec import AppSpec, DeploymentSpec

DEFAULT_REPLICA_MEMORY_MB = 2048  # a replica whose spec names no memory_mb
# Ray gives replicas the node's memory less its object store: a pod holds its replicas' memory_mb
# plus a pinned object store (shared memory, small: requests and replies pass through it) plus
# the raylet's and worker processes' own footprint.
OBJECT_STORE_MB = 1024
RAY_PROCESS_OVERHEAD_MB = 1024
RAY_NODE_OVERHEAD_MB = OBJECT_STORE_MB + RAY_PROCESS_OVERHEAD_MB
HEAD_CPUS = 1
HEAD_MEMORY_MB = 4096
HEAD_PORTS = {"gcs-server": 6379, "client": 10001, "metrics": 8080}
# The dashboard (and its job-submission API, which runs arbitrary code) listens on the head's loopback
# only: reach it with `kubectl port-forward`. KubeRay's probes ask for it on localhost.
DASHBOARD_HOST = "127.0.0.1"
GPU_RESOURCE = "nvidia.com/gpu"
WORKER_IDLE_TIMEOUT_S = 60

Manifest = dict[str, Any]


@dataclass
class WorkerGroup:
    """One KubeRay worker group: the pod shape and the bounds of its pod count."""

    name: str
    gpu: bool
    deployments: list[DeploymentSpec] = field(default_factory=list)

    @property
    def cpus(self) -> int:
        return max(1, *(math.ceil(d.resources.cpus) for d in self.deployments))

    @property
    def gpus(self) -> int:
        return max(math.ceil(d.resources.gpus) for d in self.deployments) if self.gpu else 0

    @property
    def replica_memory_mb(self) -> int:
        return max(_memory_mb(d) for d in self.deployments)

    @property
    def memory_mb(self) -> int:
        return self.replica_memory_mb + RAY_NODE_OVERHEAD_MB

    @property
    def custom_resources(self) -> dict[str, float]:
        """What a pod of this group offers beyond CPU, GPU and memory (Ray's custom resources)."""
        offered: dict[str, float] = {}
        for deployment in self.deployments:
            for name, amount in deployment.resources.custom.items():
                offered[name] = max(offered.get(name, 0.0), amount)
            if deployment.resources.accelerator_type is not None:
                # Ray turns an actor's accelerator_type into a small demand for this resource;
                # a node with the accelerator offers 1 of it.
                offered[f"accelerator_type:{deployment.resources.accelerator_type}"] = 1.0
        return dict(sorted(offered.items()))

    def replicas_per_pod(self, deployment: DeploymentSpec) -> int:
        resources = deployment.resources
        counts = [fits(self.cpus, resources.cpus), fits(self.replica_memory_mb, _memory_mb(deployment))]
        if resources.gpus > 0:
            counts.append(fits(self.gpus, resources.gpus))
        offered = self.custom_resources
        counts += [fits(offered[name], amount) for name, amount in resources.custom.items()]
        return max(1, min(counts))

    def pods(self, replica_count: int, deployment: DeploymentSpec) -> int:
        return math.ceil(replica_count / self.replicas_per_pod(deployment))

    @property
    def replicas(self) -> int:
        return sum(self.pods(d.replicas, d) for d in self.deployments)

    @property
    def min_replicas(self) -> int:
        return sum(self.pods(d.autoscaling.min_replicas if d.autoscaling else d.replicas, d) for d in self.deployments)

    @property
    def max_replicas(self) -> int:
        return sum(self.pods(d.autoscaling.max_replicas if d.autoscaling else d.replicas, d) for d in self.deployments)


def _memory_mb(deployment: DeploymentSpec) -> int:
    return deployment.resources.memory_mb or DEFAULT_REPLICA_MEMORY_MB


def _group_name(deployment: DeploymentSpec) -> str:
    kind = "gpu" if deployment.resources.gpus > 0 else "cpu"
    accelerator = deployment.resources.accelerator_type
    suffix = dns1123_label(accelerator, 12) if accelerator else ""
    return f"{kind}-{suffix}" if suffix else kind


def worker_groups(spec: AppSpec) -> list[WorkerGroup]:
    """The groups the deployments need, CPU groups first; a GPU group only if a deployment asks for GPUs."""
    groups: dict[str, WorkerGroup] = {}
    for deployment in spec.deployments:
        name = _group_name(deployment)
        group = groups.setdefault(name, WorkerGroup(name=name, gpu=deployment.resources.gpus > 0))
        group.deployments.append(deployment)
    return sorted(groups.values(), key=lambda g: (g.gpu, g.name))


def _ray_resources_param(resources: dict[str, float]) -> str:
    # KubeRay pastes rayStartParams into `ray start --resources=...` in a shell: the JSON object
    # goes in as a quoted, escaped string, the form KubeRay's docs give.
    whole = {name: int(amount) if amount == int(amount) else amount for name, amount in resources.items()}
    return json.dumps(json.dumps(whole, sort_keys=True))


def _container_resources(cpus: int, memory_mb: int, gpus: int = 0) -> Manifest:
    # Ray sizes a node from its container's limits: requests equal limits so the pod is what Ray thinks.
    requests = {"cpu": cpu_quantity(cpus), "memory": memory_quantity(memory_mb)}
    limits = dict(requests)
    if gpus:
        limits[GPU_RESOURCE] = str(gpus)
    return {"requests": requests, "limits": limits}


def _object_store_params() -> dict[str, str]:
    return {"object-store-memory": str(OBJECT_STORE_MB * 1024 * 1024)}


def _shared_memory() -> tuple[Manifest, Manifest]:
    """/dev/shm sized for the object store: a container's default 64 MiB would send Ray to /tmp."""
    volume = {"name": "shared-memory", "emptyDir": {"medium": "Memory", "sizeLimit": memory_quantity(OBJECT_STORE_MB)}}
    return volume, {"name": "shared-memory", "mountPath": "/dev/shm"}


def _head_group(names: AppNames, image: str) -> Manifest:
    volume, mount = _shared_memory()
    return {
        "serviceType": "ClusterIP",
        # num-cpus 0: no replica lands on the head, whose memory the GCS needs. The Ray runtime's
        # controller asks for no CPU and for the head's own resource, so it still runs here.
        "rayStartParams": {"dashboard-host": DASHBOARD_HOST, "num-cpus": "0", **_object_store_params()},
        "template": {
            "metadata": {"labels": labels(names, "ray-head")},
            "spec": {
                "containers": [
                    {
                        "name": "ray-head",
                        "image": image,
                        "ports": [{"name": name, "containerPort": port} for name, port in HEAD_PORTS.items()],
                        "resources": _container_resources(HEAD_CPUS, HEAD_MEMORY_MB),
                        "volumeMounts": [mount],
                    }
                ],
                "volumes": [volume],
            },
        },
    }


def _worker_group(group: WorkerGroup, names: AppNames, image: str) -> Manifest:
    params = _object_store_params()
    if group.custom_resources:
        params["resources"] = _ray_resources_param(group.custom_resources)
    volume, mount = _shared_memory()
    pod_spec: Manifest = {
        "containers": [
            {
                "name": "ray-worker",
                "image": image,
                "resources": _container_resources(group.cpus, group.memory_mb, group.gpus),
                "volumeMounts": [mount],
            }
        ],
        "volumes": [volume],
    }
    if group.gpu:
        # GPU node pools are commonly tainted so that only pods that need a GPU land there.
        pod_spec["tolerations"] = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]
    return {
        "groupName": group.name,
        "replicas": group.replicas,
        "minReplicas": group.min_replicas,
        "maxReplicas": group.max_replicas,
        "rayStartParams": params,
        "template": {"metadata": {"labels": labels(names, f"ray-worker-{group.name}")}, "spec": pod_spec},
    }


def ray_cluster(spec: AppSpec, names: AppNames, *, namespace: str, image: str, ray_version: str) -> Manifest:
    autoscales = any(d.autoscaling is not None for d in spec.deployments)
    cluster_spec: Manifest = {
        "rayVersion": ray_version,
        "enableInTreeAutoscaling": autoscales,
        "headGroupSpec": _head_group(names, image),
        "workerGroupSpecs": [_worker_group(group, names, image) for group in worker_groups(spec)],
    }
    if autoscales:
        cluster_spec["autoscalerOptions"] = {"upscalingMode": "Default", "idleTimeoutSeconds": WORKER_IDLE_TIMEOUT_S}
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {"name": names.ray_cluster, "namespace": namespace, "labels": labels(names, "ray")},
        "spec": cluster_spec,
    }


def ray_gcs_address(names: AppNames, namespace: str) -> str:
    """The head's GCS on the Service KubeRay creates: gateway and worker pods join the cluster there."""
    return f"{names.ray_head_service}.{namespace}.svc:{HEAD_PORTS['gcs-server']}"
