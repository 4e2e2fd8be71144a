"""Deployment targets: what it takes to run an app somewhere other than one process (Kubernetes)."""

from strata.deploy.kubernetes import (
    KubernetesOptions,
    app_spec_yaml,
    manifests_yaml,
    render_kubernetes,
    write_manifests,
)

__all__ = ["KubernetesOptions", "app_spec_yaml", "manifests_yaml", "render_kubernetes", "write_manifests"]
