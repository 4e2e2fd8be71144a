"""``networking.k8s.io/v1`` NetworkPolicies: what may reach the app's pods.

Every pod of the app (Ray head and workers, gateways, job workers; they are all Ray nodes) takes
traffic from the app's own pods only: Ray's ports (GCS, raylets, object transfer, the replicas'
metrics) are unauthenticated by design and must not face the rest of the cluster. The gateways
also take traffic on their HTTP port from anywhere: that port is the API, and it asks for
credentials itself. A cluster whose network plugin does not enforce NetworkPolicies ignores them;
the Ray dashboard also listens on the head's loopback only (see raycluster.py), so it stays off the
network either way.
"""

from __future__ import annotations

from typing import Any

from strata.deploy.names import AppNames, labels, selector_labels

Manifest = dict[str, Any]

APP_LABEL = "app.kubernetes.io/name"


def _policy(name: str, names: AppNames, namespace: str, selector: dict[str, str], ingress: list[Manifest]) -> Manifest:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace, "labels": labels(names, "network")},
        "spec": {"podSelector": {"matchLabels": selector}, "policyTypes": ["Ingress"], "ingress": ingress},
    }


def app_internal_policy(names: AppNames, namespace: str) -> Manifest:
    """The app's pods accept connections from the app's pods, on any port, and from nothing else."""
    own = {APP_LABEL: names.base}
    return _policy(f"{names.base}-internal", names, namespace, own, [{"from": [{"podSelector": {"matchLabels": own}}]}])


def gateway_ingress_policy(names: AppNames, namespace: str, port: int) -> Manifest:
    """Anyone may open the gateways' HTTP port (policies add up: the internal one still applies)."""
    return _policy(
        f"{names.gateway}-http",
        names,
        namespace,
        selector_labels(names, "gateway"),
        [{"ports": [{"protocol": "TCP", "port": port}]}],
    )
