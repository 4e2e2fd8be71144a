"""The app's own pods: the gateway Deployment and its Service, the workflow worker Deployment, and
the ConfigMap holding the app spec both run from.

Gateways and workers run the same image as the Ray nodes. They read the spec from the ConfigMap,
the store URLs from a Secret the operator creates (``<app>-stores``; Strata never renders
credentials), and reach the Ray cluster through Ray Client on KubeRay's head Service.
"""

from __future__ import annotations

import hashlib
from typing import Any

from strata.deploy.names import AppNames, labels, selector_labels
from strata.deploy.raycluster import ray_gcs_address
from strata.spec import AppSpec

Manifest = dict[str, Any]

SPEC_FOLDER = "/etc/strata"
SPEC_FILE = "app.yaml"
SPEC_PATH = f"{SPEC_FOLDER}/{SPEC_FILE}"
SERVICE_PORT = 80
# Secret keys -> the environment variables `strata serve` and `strata worker` read them from.
STORE_ENV = {
    "database-url": "STRATA_DATABASE_URL",
    "redis-url": "STRATA_REDIS_URL",
    "artifacts-url": "STRATA_ARTIFACTS_URL",
}
OPTIONAL_SECRET_KEYS = {"artifacts-url"}  # without it, the spec's artifacts_url stands
SPEC_HASH_ANNOTATION = "strata.dev/app-spec-sha256"
ADMIN_KEY_SECRET_KEY = "admin-key"


def _metadata(name: str, names: AppNames, component: str, namespace: str) -> Manifest:
    return {"name": name, "namespace": namespace, "labels": labels(names, component)}


def app_spec_config_map(names: AppNames, namespace: str, spec_yaml: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(names.app_spec, names, "config", namespace),
        "data": {SPEC_FILE: spec_yaml},
    }


# Gateways and workers are Ray drivers, and a driver needs a raylet on its own node: the pod joins
# the cluster as a node that offers no CPU or GPU (so no replica lands on it), then runs the
# program in ``args``. Ray Client (ray://) would spare the join but lacks parts of the async actor
# API the runtime uses, and it adds a proxy hop to every request.
JOIN_RAY = [
    "/bin/sh",
    "-c",
    'ray start --address="$RAY_HEAD_ADDRESS" --num-cpus=0 --num-gpus=0 --disable-usage-stats && exec "$@"',
    "join-ray",
]


def _environment(names: AppNames, namespace: str) -> list[Manifest]:
    env: list[Manifest] = [
        {"name": "RAY_HEAD_ADDRESS", "value": ray_gcs_address(names, namespace)},
        {"name": "STRATA_RAY_ADDRESS", "value": "auto"},  # the node the pod joined (see JOIN_RAY)
    ]
    for key, variable in STORE_ENV.items():
        reference: Manifest = {"name": names.stores_secret, "key": key}
        if key in OPTIONAL_SECRET_KEYS:
            reference["optional"] = True
        env.append({"name": variable, "valueFrom": {"secretKeyRef": reference}})
    return env


def _admin_key(names: AppNames) -> Manifest:
    """The bootstrap admin key comes from the operator's Secret: a gateway never generates one, which
    it could only hand over through its logs (see access/admin_key.py). Not optional: a missing Secret
    stops the pod with a clear event instead of starting a gateway nobody can administer."""
    reference = {"name": names.admin_secret, "key": ADMIN_KEY_SECRET_KEY}
    return {"name": "STRATA_ADMIN_KEY", "valueFrom": {"secretKeyRef": reference}}


def _pod_template(
    names: AppNames, component: str, container: Manifest, spec_yaml: str, annotations: dict[str, str] | None = None
) -> Manifest:
    # The spec's hash on the pod template: a changed spec rolls the pods, an unchanged one does not.
    annotations = {SPEC_HASH_ANNOTATION: hashlib.sha256(spec_yaml.encode()).hexdigest(), **(annotations or {})}
    container["volumeMounts"] = [{"name": "app-spec", "mountPath": SPEC_FOLDER, "readOnly": True}]
    return {
        "metadata": {"labels": labels(names, component), "annotations": annotations},
        "spec": {
            "containers": [container],
            "volumes": [{"name": "app-spec", "configMap": {"name": names.app_spec}}],
        },
    }


def _probe(spec: AppSpec, path: str, period_s: int, failures: int) -> Manifest:
    """HTTP(S) on ``path``; with mutual TLS a TCP connect (the kubelet has no client certificate)."""
    tls = spec.gateway.tls
    check: Manifest = {"httpGet": {"path": path, "port": "http"}}
    if tls is not None and tls.client_ca_file is not None:
        check = {"tcpSocket": {"port": "http"}}
    elif tls is not None:
        check["httpGet"]["scheme"] = "HTTPS"
    return {**check, "periodSeconds": period_s, "timeoutSeconds": 2, "failureThreshold": failures}


def gateway_deployment(
    spec: AppSpec, names: AppNames, *, namespace: str, image: str, replicas: int, spec_yaml: str
) -> Manifest:
    port = spec.gateway.port
    container: Manifest = {
        "name": "gateway",
        "image": image,
        "command": JOIN_RAY,
        "args": ["strata", "serve", SPEC_PATH, "--runtime", "ray", "--host", "0.0.0.0", "--port", str(port)],
        "ports": [{"name": "http", "containerPort": port}],
        "env": [*_environment(names, namespace), _admin_key(names)],
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
        # /healthz answers as soon as the server runs; /readyz only once the replicas are loaded,
        # so a gateway joins the Service when it can serve and is restarted only when it hangs.
        "livenessProbe": _probe(spec, "/healthz", period_s=10, failures=3),
        "readinessProbe": _probe(spec, "/readyz", period_s=5, failures=2),
    }
    scrape = {"prometheus.io/scrape": "true", "prometheus.io/port": str(port), "prometheus.io/path": "/metrics"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(names.gateway, names, "gateway", namespace),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector_labels(names, "gateway")},
            # One new gateway at a time, none taken away before its successor is ready.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": _pod_template(names, "gateway", container, spec_yaml, scrape),
        },
    }


def gateway_service(names: AppNames, namespace: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(names.gateway, names, "gateway", namespace),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(names, "gateway"),
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def worker_deployment(names: AppNames, *, namespace: str, image: str, replicas: int, spec_yaml: str) -> Manifest:
    # No probes: a worker serves no HTTP; it claims jobs under leases, so one that hangs loses its
    # jobs to the others when the leases lapse. Small: with runtime ray its generate steps go to
    # the cluster's replicas, it loads no models of its own.
    container: Manifest = {
        "name": "worker",
        "image": image,
        "command": JOIN_RAY,
        "args": ["strata", "worker", SPEC_PATH],
        "env": _environment(names, namespace),
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(names.worker, names, "worker", namespace),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector_labels(names, "worker")},
            "template": _pod_template(names, "worker", container, spec_yaml),
        },
    }
