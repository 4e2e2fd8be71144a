"""Kubernetes names and labels derived from an app's name.

App names may hold characters Kubernetes refuses (``My_App/v2@prod``); every object name here is a
DNS-1123 label built from one sanitised base, so the objects of one app are easy to find and
never collide with another app's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_LABEL_MAX = 63
# KubeRay names pods '<cluster>-head-xxxxx' and '<cluster>-<group>-worker-xxxxx' and the head
# Service '<cluster>-head-svc'; a base of 40 leaves room for those suffixes within 63.
BASE_MAX = 40
FALLBACK_BASE = "strata"


def dns1123_label(text: str, max_length: int = DNS1123_LABEL_MAX) -> str:
    """Lower case, every run of other characters one '-', trimmed to ``max_length``; '' if nothing is left."""
    label = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return label[:max_length].rstrip("-")


@dataclass(frozen=True)
class AppNames:
    """The name of every object rendered for one app, all from the same base."""

    base: str

    @classmethod
    def for_app(cls, app_name: str) -> AppNames:
        return cls(dns1123_label(app_name, BASE_MAX) or FALLBACK_BASE)

    @property
    def ray_cluster(self) -> str:
        return f"{self.base}-ray"

    @property
    def ray_head_service(self) -> str:
        """The Service KubeRay creates for the head (its name is KubeRay's convention)."""
        return f"{self.ray_cluster}-head-svc"

    @property
    def gateway(self) -> str:
        return f"{self.base}-gateway"

    @property
    def worker(self) -> str:
        return f"{self.base}-worker"

    @property
    def app_spec(self) -> str:
        return f"{self.base}-app-spec"

    @property
    def stores_secret(self) -> str:
        return f"{self.base}-stores"

    @property
    def admin_secret(self) -> str:
        """The operator's Secret holding the bootstrap admin key (key ``admin-key``)."""
        return f"{self.base}-admin"


def labels(names: AppNames, component: str) -> dict[str, str]:
    """The recommended app.kubernetes.io labels; ``selector_labels`` is the stable subset selectors use."""
    return {
        **selector_labels(names, component),
        "app.kubernetes.io/part-of": "strata",
        "app.kubernetes.io/managed-by": "strata",
    }


def selector_labels(names: AppNames, component: str) -> dict[str, str]:
    # Deployment selectors cannot change after creation: only labels that never change go here.
    return {"app.kubernetes.io/name": names.base, "app.kubernetes.io/component": component}
