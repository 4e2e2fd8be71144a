"""How the gateway tier scales and survives node drains: an ``autoscaling/v2``
HorizontalPodAutoscaler on the gateways' queue depth, and a ``policy/v1`` PodDisruptionBudget.

The HPA reads ``strata_queue_depth`` (requests waiting for a batch, a gauge per deployment on each
gateway's /metrics) as a Pods metric: the custom metrics API must serve it, which takes Prometheus
scraping the gateways and a metrics adapter (prometheus-adapter, summing the gauge per pod).
Without one the HPA reports the metric unavailable and leaves the replica count where it is.
"""

from __future__ import annotations

from typing import Any

from strata.deploy.names import AppNames, labels, selector_labels
from strata.spec import AppSpec
from strata.spec.scaling import AutoscalingSpec

Manifest = dict[str, Any]

QUEUE_DEPTH_METRIC = "strata_queue_depth"
SCALE_DOWN_WINDOW_S = 300  # Kubernetes' own default, stated: gateways hold streams, so shed them slowly


def queue_target(spec: AppSpec) -> float:
    """Requests waiting per gateway before another is added: the tightest target_queue of the
    autoscaled deployments (they share the gateways), else the autoscaler's default."""
    targets = [d.autoscaling.target_queue for d in spec.deployments if d.autoscaling is not None]
    return min(targets) if targets else AutoscalingSpec().target_queue


def _quantity(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{round(value * 1000)}m"


def gateway_autoscaler(
    spec: AppSpec, names: AppNames, *, namespace: str, min_replicas: int, max_replicas: int
) -> Manifest:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": names.gateway, "namespace": namespace, "labels": labels(names, "gateway")},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": names.gateway},
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": QUEUE_DEPTH_METRIC},
                        "target": {"type": "AverageValue", "averageValue": _quantity(queue_target(spec))},
                    },
                }
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": SCALE_DOWN_WINDOW_S}},
        },
    }


def gateway_disruption_budget(names: AppNames, namespace: str) -> Manifest:
    # maxUnavailable rather than minAvailable: with a single gateway, minAvailable 1 would block
    # every node drain; one at a time keeps the rest serving.
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": names.gateway, "namespace": namespace, "labels": labels(names, "gateway")},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(names, "gateway")}},
    }
