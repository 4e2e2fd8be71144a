"""The Kubernetes manifests: valid against the official schemas, and wired together as the app needs."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kube_schemas import KUBERNETES_VERSIONS, validate

from strata.apps import default_app
from strata.deploy import KubernetesOptions, app_spec_yaml, render_kubernetes
from strata.deploy.names import DNS1123_LABEL, DNS1123_LABEL_MAX, AppNames
from strata.deploy.raycluster import GPU_RESOURCE, worker_groups
from strata.errors import SpecError
from strata.spec import AppSpec, DeploymentSpec, ModelSpec, ResourcesSpec, RouteSpec, parse_spec
from strata.spec.models import TLSSpec
from strata.spec.scaling import AutoscalingSpec

ECHO = "strata.models.python_model:EchoModel"
OPTIONS = KubernetesOptions(image="registry.example/strata:0.1.0", namespace="serving", ray_version="2.60.0")


def gpu_app() -> AppSpec:
    """A CPU deployment and an A100 deployment, both autoscaled, under a name Kubernetes would refuse."""
    return AppSpec(
        name="Acme_LLM/Prod@v2",
        models=[
            ModelSpec(name="embed", kind="python", entrypoint=ECHO),
            ModelSpec(name="llm", kind="python", entrypoint=ECHO),
        ],
        deployments=[
            DeploymentSpec(
                name="embed",
                model="embed",
                replicas=2,
                resources=ResourcesSpec(cpus=2, memory_mb=3000),
                autoscaling=AutoscalingSpec(min_replicas=1, max_replicas=6, target_queue=24),
            ),
            DeploymentSpec(
                name="llm",
                model="llm",
                replicas=1,
                resources=ResourcesSpec(
                    cpus=4, gpus=1, memory_mb=16_000, accelerator_type="A100", custom={"big-node": 1}
                ),
                autoscaling=AutoscalingSpec(min_replicas=0, max_replicas=3, target_queue=8),
            ),
        ],
        routes=[RouteSpec(name="embed", deployment="embed"), RouteSpec(name="llm", deployment="llm")],
    )


def by_kind(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests if m["kind"] == kind]


def gateway(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    return next(m for m in by_kind(manifests, "Deployment") if m["metadata"]["name"].endswith("-gateway"))


APPS = {"default": default_app, "gpu": gpu_app}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("app", sorted(APPS))
def test_every_manifest_validates_against_the_official_schemas(app: str, version: str) -> None:
    manifests = render_kubernetes(APPS[app](), OPTIONS)
    kinds = {m["kind"] for m in manifests}
    assert kinds == {
        "ConfigMap",
        "RayCluster",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
    }
    for manifest in manifests:
        validate(manifest, version)


def _broken(manifests: list[dict[str, Any]], kind: str, change: str) -> dict[str, Any]:
    manifest = copy.deepcopy(next(m for m in manifests if m["kind"] == kind))
    spec = manifest["spec"]
    if change == "unknown-field":
        spec["replica"] = 3
    elif change == "wrong-type":
        spec["replicas"] = "three"
    elif change == "group-without-name":
        del spec["workerGroupSpecs"][0]["groupName"]
    elif change == "container-without-name":  # inside the pod template: the $ref to core v1 is live
        del spec["headGroupSpec"]["template"]["spec"]["containers"][0]["name"]
    elif change == "bad-metric-target":
        spec["metrics"][0]["pods"]["target"]["type"] = "Percent"
    return manifest


@pytest.mark.parametrize(
    ("kind", "change"),
    [
        ("Deployment", "unknown-field"),
        ("Deployment", "wrong-type"),
        ("RayCluster", "unknown-field"),
        ("RayCluster", "group-without-name"),
        ("RayCluster", "container-without-name"),
        ("HorizontalPodAutoscaler", "unknown-field"),
    ],
)
def test_a_broken_manifest_fails_validation(kind: str, change: str) -> None:
    manifests = render_kubernetes(gpu_app(), OPTIONS)
    validate(next(m for m in manifests if m["kind"] == kind), KUBERNETES_VERSIONS[-1])  # intact: passes
    with pytest.raises(jsonschema.ValidationError):
        validate(_broken(manifests, kind, change), KUBERNETES_VERSIONS[-1])


def test_an_unknown_kind_is_not_silently_passed() -> None:
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        validate({"apiVersion": "v1", "kind": "Gateway", "metadata": {"name": "x"}}, KUBERNETES_VERSIONS[-1])


def test_gpu_worker_group_only_when_a_deployment_asks_for_gpus() -> None:
    default = render_kubernetes(default_app(), OPTIONS)
    cluster = by_kind(default, "RayCluster")[0]["spec"]
    assert [g["groupName"] for g in cluster["workerGroupSpecs"]] == ["cpu"]
    assert GPU_RESOURCE not in str(default)
    assert cluster["enableInTreeAutoscaling"] is False
    assert "autoscalerOptions" not in cluster

    spec = gpu_app()
    cluster = by_kind(render_kubernetes(spec, OPTIONS), "RayCluster")[0]["spec"]
    groups = {g["groupName"]: g for g in cluster["workerGroupSpecs"]}
    assert sorted(groups) == ["cpu", "gpu-a100"]
    assert cluster["enableInTreeAutoscaling"] is True
    cpu, gpu = groups["cpu"], groups["gpu-a100"]
    assert GPU_RESOURCE not in str(cpu)
    worker = gpu["template"]["spec"]["containers"][0]
    assert worker["resources"]["limits"][GPU_RESOURCE] == "1"
    # Ray learns from rayStartParams that only this group offers the A100 and the custom resource.
    offered = yaml.safe_load(yaml.safe_load(gpu["rayStartParams"]["resources"]))
    assert offered == {"accelerator_type:A100": 1, "big-node": 1}
    assert "resources" not in cpu["rayStartParams"]
    # Ray offers replicas the pod's memory less the object store: the A100 replica's memory_mb fits.
    pod_memory_mib = int(worker["resources"]["limits"]["memory"].removesuffix("Mi"))
    object_store_mib = int(gpu["rayStartParams"]["object-store-memory"]) // 2**20
    assert pod_memory_mib - object_store_mib > spec.deployments[1].resources.memory_mb  # type: ignore[operator]
    # One replica per pod here, so the pod bounds are the deployments' replica bounds.
    embed, llm = spec.deployments
    for group, deployment in ((cpu, embed), (gpu, llm)):
        assert deployment.autoscaling is not None
        assert (group["minReplicas"], group["replicas"], group["maxReplicas"]) == (
            deployment.autoscaling.min_replicas,
            deployment.replicas,
            deployment.autoscaling.max_replicas,
        )


def test_small_replicas_share_a_worker_pod() -> None:
    big = DeploymentSpec(name="big", model="m", replicas=1, resources=ResourcesSpec(cpus=4))
    small = DeploymentSpec(name="small", model="m", replicas=5, resources=ResourcesSpec(cpus=0.5, memory_mb=512))
    spec = AppSpec(
        models=[ModelSpec(name="m", kind="python", entrypoint=ECHO)],
        deployments=[big, small],
        routes=[RouteSpec(name="big", deployment="big"), RouteSpec(name="small", deployment="small")],
    )
    (group,) = worker_groups(spec)
    assert group.cpus == 4
    assert group.replicas_per_pod(small) == 4  # bounded by memory (2048 / 512) and CPUs (4 / 0.5)
    assert group.replicas == 1 + 2


def test_probes_ports_and_selectors_line_up() -> None:
    manifests = render_kubernetes(gpu_app(), OPTIONS)
    deployment = gateway(manifests)
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": gpu_app().gateway.port}]
    pod_labels = pod["metadata"]["labels"]
    service = by_kind(manifests, "Service")[0]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    pdb = by_kind(manifests, "PodDisruptionBudget")[0]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    hpa = by_kind(manifests, "HorizontalPodAutoscaler")[0]["spec"]
    assert hpa["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["minReplicas"] == deployment["spec"]["replicas"] == OPTIONS.gateways
    assert hpa["metrics"][0]["pods"]["metric"]["name"] == "strata_queue_depth"
    assert hpa["metrics"][0]["pods"]["target"]["averageValue"] == "8"  # the tighter of target_queue 24 and 8


def test_gateways_and_workers_read_the_spec_and_stores_as_serve_does() -> None:
    manifests = render_kubernetes(gpu_app(), OPTIONS)
    config_map = by_kind(manifests, "ConfigMap")[0]
    for deployment in by_kind(manifests, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        mount = container["volumeMounts"][0]
        assert container["args"][2] == f"{mount['mountPath']}/app.yaml"
        assert pod["volumes"][0]["configMap"]["name"] == config_map["metadata"]["name"]
        env = {e["name"]: e for e in container["env"]}
        secret = env["STRATA_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        assert secret["name"] == env["STRATA_REDIS_URL"]["valueFrom"]["secretKeyRef"]["name"]
        assert env["RAY_HEAD_ADDRESS"]["value"] == "acme-llm-prod-v2-ray-head-svc.serving.svc:6379"
        assert env["STRATA_RAY_ADDRESS"]["value"] == "auto"
        assert container["command"][:2] == ["/bin/sh", "-c"]
        assert container["command"][2].startswith('ray start --address="$RAY_HEAD_ADDRESS" --num-cpus=0')
    programs = [d["spec"]["template"]["spec"]["containers"][0]["args"][:2] for d in by_kind(manifests, "Deployment")]
    assert programs == [["strata", "serve"], ["strata", "worker"]]


def test_the_mounted_spec_is_the_app_with_runtime_ray() -> None:
    spec = gpu_app()
    config_map = by_kind(render_kubernetes(spec, OPTIONS), "ConfigMap")[0]
    mounted = parse_spec(yaml.safe_load(config_map["data"]["app.yaml"]))
    assert mounted == spec.model_copy(update={"runtime": "ray"})
    assert config_map["data"]["app.yaml"] == app_spec_yaml(spec)


def test_names_are_dns1123_labels_derived_from_the_app_name() -> None:
    manifests = render_kubernetes(gpu_app(), OPTIONS)
    assert AppNames.for_app("Acme_LLM/Prod@v2").base == "acme-llm-prod-v2"
    for manifest in manifests:
        name = manifest["metadata"]["name"]
        assert DNS1123_LABEL.match(name), name
        assert name.startswith("acme-llm-prod-v2-")
        assert manifest["metadata"]["namespace"] == "serving"
        assert manifest["metadata"]["labels"]["app.kubernetes.io/name"] == "acme-llm-prod-v2"
    long = AppNames.for_app("A" * 120 + "_x")
    assert DNS1123_LABEL.match(long.ray_head_service)
    assert len(long.ray_head_service) <= DNS1123_LABEL_MAX
    assert AppNames.for_app("@@@").base == "strata"


def test_an_app_a_pod_could_not_serve_is_refused_by_name() -> None:
    spec = gpu_app()
    with pytest.raises(SpecError, match=r"gateway\.port"):
        render_kubernetes(spec.model_copy(update={"gateway": spec.gateway.model_copy(update={"port": 0})}), OPTIONS)
    with pytest.raises(SpecError, match=r"access\.enabled"):
        render_kubernetes(
            spec.model_copy(update={"access": spec.access.model_copy(update={"enabled": False})}), OPTIONS
        )


def test_options_name_their_bad_field() -> None:
    with pytest.raises(ValueError, match="namespace"):
        KubernetesOptions(image="x", namespace="Bad_NS", ray_version="2.60.0")
    with pytest.raises(ValueError, match="max_gateways"):
        KubernetesOptions(image="x", gateways=4, max_gateways=2, ray_version="2.60.0")
    no_workers = render_kubernetes(gpu_app(), OPTIONS.model_copy(update={"workers": 0}))
    assert len(by_kind(no_workers, "Deployment")) == 1


def test_network_policies_let_only_the_apps_own_pods_in_except_on_the_gateways_http_port() -> None:
    manifests = render_kubernetes(gpu_app(), OPTIONS)
    internal, public = by_kind(manifests, "NetworkPolicy")
    pods = [m["spec"]["template"]["metadata"]["labels"] for m in by_kind(manifests, "Deployment")]
    cluster = by_kind(manifests, "RayCluster")[0]["spec"]
    pods += [cluster["headGroupSpec"]["template"]["metadata"]["labels"]]
    pods += [g["template"]["metadata"]["labels"] for g in cluster["workerGroupSpecs"]]
    own = internal["spec"]["podSelector"]["matchLabels"]
    for pod_labels in pods:  # every pod of the app is selected: none is open by default
        assert own.items() <= pod_labels.items()
    assert internal["spec"]["policyTypes"] == ["Ingress"]
    assert internal["spec"]["ingress"] == [{"from": [{"podSelector": {"matchLabels": own}}]}]
    gateway_labels = gateway(manifests)["spec"]["template"]["metadata"]["labels"]
    assert public["spec"]["podSelector"]["matchLabels"].items() <= gateway_labels.items()
    assert public["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": gpu_app().gateway.port}]}]
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"]["dashboard-host"] == "127.0.0.1"
    assert "0.0.0.0" not in str(cluster)
    assert 8265 not in [p["containerPort"] for p in head["template"]["spec"]["containers"][0]["ports"]]


def test_gateways_take_the_admin_key_from_a_secret() -> None:
    manifests = render_kubernetes(gpu_app(), OPTIONS)
    env = {e["name"]: e for e in gateway(manifests)["spec"]["template"]["spec"]["containers"][0]["env"]}
    reference = env["STRATA_ADMIN_KEY"]["valueFrom"]["secretKeyRef"]
    assert reference == {"name": "acme-llm-prod-v2-admin", "key": "admin-key"}  # required: never optional
    assert not any("STRATA_ADMIN_KEY" in str(m) for m in manifests if m["kind"] != "Deployment")


def test_probes_follow_the_gateways_tls() -> None:
    spec = gpu_app()
    tls = TLSSpec(certificate_file="/etc/tls/tls.crt", key_file="/etc/tls/tls.key")
    https = spec.model_copy(update={"gateway": spec.gateway.model_copy(update={"tls": tls})})
    probe = gateway(render_kubernetes(https, OPTIONS))["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert probe["httpGet"] == {"path": "/readyz", "port": "http", "scheme": "HTTPS"}
    mutual = tls.model_copy(update={"client_ca_file": "/etc/tls/ca.crt"})
    mtls = spec.model_copy(update={"gateway": spec.gateway.model_copy(update={"tls": mutual})})
    probe = gateway(render_kubernetes(mtls, OPTIONS))["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert probe["tcpSocket"] == {"port": "http"}  # the kubelet has no client certificate
