"""The app spec: models, deployments and routes, declared once (YAML or Python).

Every field is documented where it is declared; units are in the names. The same objects are
built by the YAML loader and by Python code, so both get the same validation.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from strata.errors import SpecError
from strata.registry.reference import REGISTRY_PREFIX, Reference
from strata.spec.cache import CacheSpec, RouteCacheSpec
from strata.spec.engines import EngineSpec, PrefixRoutingSpec, UpstreamSpec
from strata.spec.guardrails import GuardrailsSpec
from strata.spec.observability import ObservabilitySpec
from strata.spec.onnx import split_onnx_options
from strata.spec.pipelines import PipelineSpec, WorkflowsSpec, pipeline_problems
from strata.spec.protected import ProtectedDataSpec
from strata.spec.resilience import (
    AdmissionSpec,
    BreakerSpec,
    HealthSpec,
    OutlierSpec,
    RetrySpec,
    RolloutSpec,
    StickyBy,
    VersionSpec,
)
from strata.spec.retrieval import RetrievalSpec
from strata.spec.scaling import AutoscalingSpec, RaySpec

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$"

ModelKind = Literal["hf-causal-lm", "hf-embedding", "python", "openai", "vllm", "llama-cpp", "onnx"]
"""hf-causal-lm: text generation from a local transformers folder (continuous batching);
hf-embedding: sentence embeddings from a local transformers folder (mean pooling);
python: any object with ``predict_batch(list) -> list`` built by ``entrypoint``;
openai: text generation by an OpenAI-compatible server or provider (``upstream``);
vllm: text generation by a vLLM engine process Strata starts per replica (``path``, ``engine``);
llama-cpp: text generation from a GGUF file with llama.cpp (``path``; needs the llama-cpp extra);
onnx: a folder written by ``strata export onnx`` run by ONNX Runtime (``path``): sentence embeddings, or with
``entrypoint`` a Python model built around the session (the autonomy planner's denoiser)."""

Task = Literal["generate", "embed", "predict"]

TASK_OF_KIND: dict[str, Task] = {
    "hf-causal-lm": "generate",
    "hf-embedding": "embed",
    "python": "predict",
    "openai": "generate",
    "vllm": "generate",
    "llama-cpp": "generate",
    "onnx": "embed",  # with an entrypoint: predict (ModelSpec.task)
}


class SpecModel(BaseModel):
    """Base for spec objects: unknown keys are errors (a typo must not pass silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(SpecModel):
    name: str = Field(pattern=NAME_PATTERN, description="Name deployments use to refer to this model.")
    kind: ModelKind = Field(description="Which backend loads and runs the model.")
    path: str | None = Field(
        default=None,
        description=(
            "Local folder with the model files, builtin:NAME for a model Strata ships, or registry:NAME@VERSION / "
            "registry:NAME@STAGE for a version in the model registry (fetched into a local cache, every file "
            "checked against its hash, when the server starts). For kind python, optional: the factory gets the "
            "folder as its 'path' keyword."
        ),
    )
    entrypoint: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="For kind python: 'package.module:factory' returning the model object. For kind onnx: a "
        "factory called with the loaded session as onnx=... and the other options (the model then predicts).",
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments passed to the backend or the factory."
    )
    upstream: UpstreamSpec | None = Field(
        default=None, description="For kind openai: the OpenAI-compatible server this model is served by."
    )
    engine: EngineSpec | None = Field(
        default=None, description="For kind vllm: how Strata starts the engine process of each replica."
    )

    @property
    def task(self) -> Task:
        if self.kind == "onnx" and self.entrypoint is not None:
            return "predict"
        return TASK_OF_KIND[self.kind]

    @model_validator(mode="after")
    def _source_matches_kind(self) -> ModelSpec:
        if self.kind == "python":
            if self.entrypoint is None:
                raise ValueError("kind 'python' needs 'entrypoint' (package.module:factory)")
        elif self.kind == "openai":
            if self.upstream is None:
                raise ValueError("kind 'openai' needs 'upstream' (at least base_url)")
        elif self.path is None:
            raise ValueError(f"kind '{self.kind}' needs 'path' (a local folder or builtin:NAME)")
        elif self.path.startswith(REGISTRY_PREFIX):
            try:  # a malformed reference fails with the spec, not at load time
                Reference.parse(self.path)
            except SpecError as error:
                raise ValueError(error.message) from None
        if self.kind == "onnx":
            split_onnx_options(self.options)  # ValueError names options.KEY
        elif self.entrypoint is not None and self.kind != "python":
            raise ValueError(f"'entrypoint' is for kinds python and onnx, not {self.kind}")
        if self.upstream is not None and self.kind != "openai":
            raise ValueError(f"'upstream' is for kind openai, not {self.kind}")
        if self.engine is not None and self.kind != "vllm":
            raise ValueError(f"'engine' is for kind vllm, not {self.kind}")
        return self


class BatchingSpec(SpecModel):
    max_batch_size: int = Field(
        default=32,
        ge=1,
        le=4096,
        description="Largest batch one model call gets; for text generation, the most sequences decoded together.",
    )
    max_wait_ms: float = Field(
        default=5.0,
        ge=0,
        le=60_000,
        description="Longest the first request of a batch waits for the batch to fill (dynamic batching only).",
    )
    inline: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="Run the model's batch call on the event loop instead of its thread (dynamic batching, "
        "local runtime). A thread hop costs tens of microseconds: more than a cheap model's whole call. 'auto' "
        "goes inline once 16 calls in a row took under inline_below_us and back to the thread at the first "
        "slower one; 'always' is for models you know are cheap; 'never' for any that may block (I/O, locks).",
    )
    inline_below_us: float = Field(
        default=200.0,
        gt=0,
        le=10_000,
        description="With inline 'auto': the longest a model call may take to run on the event loop.",
    )


class ResourcesSpec(SpecModel):
    cpus: float = Field(default=1.0, gt=0, description="CPU cores one replica asks for (used for placement).")
    gpus: float = Field(default=0.0, ge=0, description="GPUs one replica asks for.")
    memory_mb: int | None = Field(default=None, gt=0, description="Memory one replica asks for, in MiB.")
    device: str = Field(default="cpu", description="torch device the replica runs on: cpu, cuda, cuda:1, mps.")
    accelerator_type: str | None = Field(
        default=None,
        description="Ray runtime: only nodes with this accelerator (e.g. 'A100', 'H100'; Ray's accelerator_type).",
    )
    custom: dict[str, float] = Field(
        default_factory=dict,
        description="Ray runtime: custom resources one replica asks for, e.g. {'edge': 1}; nodes declare them.",
    )


class TargetsSpec(SpecModel):
    latency_p99_ms: float | None = Field(default=None, gt=0, description="Latency objective at the 99th percentile.")
    throughput_rps: float | None = Field(
        default=None, gt=0, description="Requests per second the deployment must sustain."
    )


class DeploymentSpec(SpecModel):
    name: str = Field(pattern=NAME_PATTERN, description="Deployment name, unique in the app.")
    model: str = Field(description="Name of a model in 'models'.")
    replicas: int = Field(default=1, ge=1, le=256, description="Number of replicas serving this deployment.")
    batching: BatchingSpec = Field(default_factory=BatchingSpec)
    max_queue: int = Field(
        default=1024,
        ge=1,
        description="Requests one replica holds waiting; beyond it requests are shed with 503 + Retry-After.",
    )
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    targets: TargetsSpec = Field(default_factory=TargetsSpec)
    breaker: BreakerSpec = Field(default_factory=BreakerSpec, description="Per replica and for the deployment.")
    outlier: OutlierSpec = Field(default_factory=OutlierSpec, description="Ejection of slow replicas.")
    retries: RetrySpec = Field(default_factory=RetrySpec, description="Retries on another replica.")
    admission: AdmissionSpec = Field(default_factory=AdmissionSpec, description="Concurrency limit and shedding.")
    health: HealthSpec = Field(default_factory=HealthSpec, description="Liveness checks and restarts.")
    prefix_routing: PrefixRoutingSpec = Field(
        default_factory=PrefixRoutingSpec, description="Prefix-aware choice of replica for text generation."
    )
    autoscaling: AutoscalingSpec | None = Field(
        default=None,
        description="Ray runtime: the replica count follows the load between min and max; None: 'replicas', fixed.",
    )

    @model_validator(mode="after")
    def _replicas_within_autoscaling_bounds(self) -> DeploymentSpec:
        scaling = self.autoscaling
        if scaling is not None and not scaling.min_replicas <= self.replicas <= scaling.max_replicas:
            raise ValueError(
                f"replicas ({self.replicas}) must lie within autoscaling min_replicas..max_replicas "
                f"({scaling.min_replicas}..{scaling.max_replicas}): it is the count started with"
            )
        return self


class RouteSpec(SpecModel):
    name: str = Field(pattern=NAME_PATTERN, description="The model name clients send (OpenAI 'model' field).")
    deployment: str | None = Field(
        default=None, description="Shorthand for one version (named after the deployment) at weight 100."
    )
    versions: list[VersionSpec] = Field(default_factory=list, description="Versions and their traffic weights.")
    sticky: StickyBy = Field(default="none", description="Keep a user or session on one version (by hash).")
    fallbacks: list[str] = Field(
        default_factory=list, description="Routes tried in order when this one fails or sheds (e.g. a smaller model)."
    )
    rollout: RolloutSpec = Field(default_factory=RolloutSpec, description="Defaults of progressive rollouts.")
    description: str | None = Field(default=None, description="Shown by GET /v1/models and `strata models`.")
    cache: RouteCacheSpec = Field(
        default_factory=RouteCacheSpec, description="Response cache of chat and text completions (off by default)."
    )

    @model_validator(mode="after")
    def _one_way_to_name_versions(self) -> RouteSpec:
        if (self.deployment is None) == (not self.versions):
            raise ValueError("give either 'deployment' or 'versions' (not both)")
        names = [v.name for v in self.versions]
        if len(set(names)) != len(names):
            raise ValueError("versions: names must be unique")
        if self.versions and abs(sum(v.weight for v in self.versions) - 100) > 1e-6:
            raise ValueError("versions: weights must add up to 100")
        return self

    def traffic_versions(self) -> list[VersionSpec]:
        """The versions, the shorthand included (one version named after its deployment)."""
        if self.deployment is not None:
            return [VersionSpec(name=self.deployment, deployment=self.deployment, weight=100.0)]
        return list(self.versions)


class TLSSpec(SpecModel):
    """HTTPS served by the gateway itself (no proxy in front needed); files are read once, at start."""

    certificate_file: str = Field(
        min_length=1,
        description="PEM certificate chain the gateway presents: its certificate first, then intermediates.",
    )
    key_file: str = Field(min_length=1, description="PEM private key of that certificate (unencrypted; mode 0600).")
    client_ca_file: str | None = Field(
        default=None,
        description="PEM bundle of the CAs whose client certificates are accepted: set, every client must present "
        "one (mutual TLS) before any HTTP is read; API keys are still checked on top.",
    )


class GatewaySpec(SpecModel):
    host: str = Field(default="127.0.0.1", description="Address the HTTP server binds.")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port; 0 picks a free one.")
    grpc_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Serve the Open Inference Protocol v2 over gRPC on this port too (same host; 0 picks a free "
        "one), with the same credentials (metadata `authorization`), limits, admission and batching as REST. "
        "None: no gRPC.",
    )
    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="Requests with a larger body get 413.")
    gil_switch_interval_ms: float = Field(
        default=0.5,
        gt=0,
        le=100,
        description="`strata serve` sets Python's thread switch interval to this: how long the request loop can "
        "wait for the GIL while a background thread (database writes, model threads in Python code) holds it. "
        "Python's own default, 5 ms, shows up as 5 ms stalls in p99.",
    )
    tls: TLSSpec | None = Field(default=None, description="Serve HTTPS (and optionally mutual TLS); None: plain HTTP.")
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="A connection must finish a request's headers this long after it opened (or after its previous "
        "response); else it is closed. Stops clients that trickle headers (slowloris) or connect and say nothing.",
    )
    max_header_bytes: int = Field(
        default=65_536, ge=4096, le=1_048_576, description="Request line and headers together; larger gets 431."
    )
    body_timeout_s: float = Field(
        default=30.0, gt=0, le=3600, description="A request's body must arrive within this long after its headers."
    )
    send_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="How long a response (a stream) may wait on a client that stopped reading before the "
        "connection is dropped and the work behind it cancelled.",
    )
    keep_alive_s: int = Field(
        default=5, ge=1, le=600, description="An idle keep-alive connection is closed after this many seconds."
    )
    max_connections: int = Field(
        default=8192,
        ge=16,
        description="Most connections (and requests in progress) at once; past it new requests get 503. Bounds the "
        "memory thousands of idle or hostile connections can hold.",
    )


class StoreSpec(SpecModel):
    database_url: str = Field(
        default="sqlite:///.strata/strata.db",
        description="Metadata database (keys, usage, audit, jobs): sqlite:///FILE or postgresql://HOST/DB. "
        "`strata serve --database-url` or STRATA_DATABASE_URL override it.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis for state shared by several gateways (rate limits, streams): redis://HOST:PORT/DB. "
        "None keeps that state in memory. `--redis-url` or STRATA_REDIS_URL override it.",
    )
    artifacts_url: str = Field(
        default=".strata/artifacts",
        description="Artifact store (job outputs, batch files): a local folder or any fsspec URL (s3://..., "
        "memory://...). STRATA_ARTIFACTS_URL overrides it.",
    )
    vectors_url: str = Field(
        default=".strata/vectors",
        description="Vector index of the vector stores: a local folder (the embedded HNSW index, persisted there, "
        "for one process) or postgresql://USER@HOST/DB (pgvector, HNSW; shared by several gateways and workers). "
        "STRATA_VECTORS_URL overrides it.",
    )


class ExtensionSpec(SpecModel):
    """Routes and background work an app adds to the gateway (e.g. the autonomy app's telemetry API)."""

    entrypoint: str = Field(
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="'package.module:function' called as function(model_server, options) when the gateway is "
        "built; it returns a strata.gateway.extensions.Extension: its routes (Endpoints, like the gateway's own) "
        "and optionally an async context manager run for the server's lifetime.",
    )
    options: dict[str, Any] = Field(default_factory=dict, description="Passed to the entrypoint as its options.")


class AppSpec(SpecModel):
    name: str = Field(default="app", pattern=NAME_PATTERN, description="App name, shown in logs and metrics.")
    runtime: Literal["local", "ray"] = Field(
        default="local",
        description="Where replicas run: local (in this process) or ray (actors on a Ray cluster). "
        "`strata serve --runtime` overrides it.",
    )
    ray: RaySpec = Field(default_factory=RaySpec, description="The Ray cluster, when runtime is ray.")
    gateway: GatewaySpec = Field(default_factory=GatewaySpec)
    store: StoreSpec = Field(default_factory=StoreSpec)
    models: list[ModelSpec] = Field(min_length=1)
    deployments: list[DeploymentSpec] = Field(min_length=1)
    routes: list[RouteSpec] = Field(min_length=1)
    access: AccessSpec = Field(default_factory=lambda: AccessSpec(), description="Credentials, limits, budgets, audit.")
    extensions: list[ExtensionSpec] = Field(default_factory=list, description="Gateway extensions, installed in order.")
    pipelines: list[PipelineSpec] = Field(default_factory=list, description="Multi-step pipelines, run as jobs.")
    workflows: WorkflowsSpec = Field(default_factory=WorkflowsSpec, description="Job workers: leases, concurrency.")
    observability: ObservabilitySpec = Field(
        default_factory=ObservabilitySpec, description="Request traces: the in-process store and OTLP export."
    )
    guardrails: GuardrailsSpec = Field(
        default_factory=GuardrailsSpec, description="Input and output guards per route and tenant (none by default)."
    )
    retrieval: RetrievalSpec = Field(
        default_factory=RetrievalSpec, description="Vector stores and retrieval in chat (RAG)."
    )
    protected_data: ProtectedDataSpec = Field(
        default_factory=ProtectedDataSpec,
        description="Per-tenant keeping of prompts and outputs (encrypted at rest) and their retention.",
    )
    cache: CacheSpec = Field(
        default_factory=CacheSpec, description="The response cache's shared settings (routes[].cache turns it on)."
    )

    @model_validator(mode="after")
    def _references_resolve(self) -> AppSpec:
        problems: list[str] = []
        for section, names in (
            ("models", [m.name for m in self.models]),
            ("deployments", [d.name for d in self.deployments]),
            ("routes", [r.name for r in self.routes]),
        ):
            seen: set[str] = set()
            for index, name in enumerate(names):
                if name in seen:
                    problems.append(f"{section}[{index}].name: duplicate name '{name}'")
                seen.add(name)
        model_names = sorted({m.name for m in self.models})
        for index, deployment in enumerate(self.deployments):
            if deployment.model not in model_names:
                problems.append(
                    f"deployments[{index}].model: unknown model '{deployment.model}' (known: {', '.join(model_names)})"
                )
        deployment_names = sorted({d.name for d in self.deployments})
        problems += _route_problems(self, deployment_names)
        problems += pipeline_problems(self.pipelines, _generate_routes(self))
        problems += _guardrail_problems(self)
        problems += _retrieval_problems(self)
        problems += _cache_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def model(self, name: str) -> ModelSpec:
        return next(m for m in self.models if m.name == name)

    def deployment(self, name: str) -> DeploymentSpec:
        return next(d for d in self.deployments if d.name == name)

    @model_validator(mode="after")
    def _access_references_resolve(self) -> AppSpec:
        deployment_names = sorted({d.name for d in self.deployments})
        problems = [
            f"access.prices[{index}].deployment: unknown deployment '{price.deployment}' "
            f"(known: {', '.join(deployment_names)})"
            for index, price in enumerate(self.access.prices)
            if price.deployment not in deployment_names
        ]
        tenants = [budget.tenant for budget in self.access.budgets]
        problems += [
            f"access.budgets[{index}].tenant: duplicate tenant '{tenant}'"
            for index, tenant in enumerate(tenants)
            if tenant in tenants[:index]
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self


def embedding_routes(app: AppSpec) -> list[str]:
    """The routes whose versions all embed (hf-embedding or onnx), in spec order."""
    tasks = {m.name: m.task for m in app.models}
    deployments = {d.name: tasks.get(d.model) for d in app.deployments}
    return [r.name for r in app.routes if all(deployments.get(v.deployment) == "embed" for v in r.traffic_versions())]


def _retrieval_problems(app: AppSpec) -> list[str]:
    named = app.retrieval.embedding_model
    if named is None or named in embedding_routes(app):
        return []
    return [f"retrieval.embedding_model: '{named}' is not an embedding route of this app"]


def _cache_problems(app: AppSpec) -> list[str]:
    problems = []
    embedders = embedding_routes(app)
    for index, route in enumerate(app.routes):
        named = route.cache.embedding_route
        if route.cache.mode == "semantic" and named not in embedders:
            problems.append(f"routes[{index}].cache.embedding_route: '{named}' is not an embedding route of this app")
    return problems


def _generate_routes(app: AppSpec) -> set[str]:
    kinds = {m.name: m.kind for m in app.models}
    deployments = {d.name: kinds.get(d.model) for d in app.deployments}
    return {
        r.name for r in app.routes if all(deployments.get(v.deployment) == "hf-causal-lm" for v in r.traffic_versions())
    }


def _guardrail_problems(app: AppSpec) -> list[str]:
    """Bindings name routes of this app; model guards a predict route, classifiers an embedding route."""
    kinds = {m.name: m.kind for m in app.models}
    deployment_kinds = {d.name: kinds.get(d.model) for d in app.deployments}
    route_kinds = {r.name: {deployment_kinds.get(v.deployment) for v in r.traffic_versions()} for r in app.routes}
    problems = [
        f"guardrails.bindings[{index}].route: unknown route '{binding.route}'"
        for index, binding in enumerate(app.guardrails.bindings)
        if binding.route != "*" and binding.route not in route_kinds
    ]
    for index, guard in enumerate(app.guardrails.guards):
        if guard.model is not None and route_kinds.get(guard.model.route) != {"python"}:
            problems.append(f"guardrails.guards[{index}].model.route: '{guard.model.route}' is not a predict route")
        if guard.classifier_route is not None and route_kinds.get(guard.classifier_route) != {"hf-embedding"}:
            problems.append(
                f"guardrails.guards[{index}].classifier_route: '{guard.classifier_route}' is not an embedding route"
            )
    return problems


def _route_problems(app: AppSpec, deployment_names: list[str]) -> list[str]:
    """Versions name known deployments of one task; fallbacks name other known routes of that task."""
    problems: list[str] = []
    models = {m.name: m for m in app.models}
    tasks = {d.name: models[d.model].task for d in app.deployments if d.model in models}
    route_tasks: dict[str, set[str]] = {}
    for index, route in enumerate(app.routes):
        where = f"routes[{index}].deployment" if route.deployment is not None else f"routes[{index}].versions"
        for version in route.traffic_versions():
            if version.deployment not in tasks:
                problems.append(
                    f"{where}: unknown deployment '{version.deployment}' (known: {', '.join(deployment_names)})"
                )
        route_tasks[route.name] = {tasks[v.deployment] for v in route.traffic_versions() if v.deployment in tasks}
        if len(route_tasks[route.name]) > 1:
            problems.append(f"{where}: versions serve different tasks ({', '.join(sorted(route_tasks[route.name]))})")
    for index, route in enumerate(app.routes):
        for position, fallback in enumerate(route.fallbacks):
            where = f"routes[{index}].fallbacks[{position}]"
            if fallback == route.name or fallback not in route_tasks:
                problems.append(f"{where}: '{fallback}' is not another route of this app")
            elif route_tasks[fallback] != route_tasks[route.name]:
                problems.append(f"{where}: route '{fallback}' serves a different task")
    return problems


class RateLimitSpec(SpecModel):
    requests_per_minute: int | None = Field(
        default=None, ge=1, description="Requests admitted per minute; None: no limit."
    )
    tokens_per_minute: int | None = Field(
        default=None, ge=1, description="Tokens (prompt + completion) per minute; None: no limit."
    )


class BudgetSpec(SpecModel):
    tenant: str = Field(description="Tenant the budget applies to; '*' for every tenant without its own.")
    period: Literal["day", "month"] = Field(
        default="month", description="Budgets reset at the start of each period (UTC)."
    )
    max_tokens: int | None = Field(default=None, ge=1, description="Tokens (in + out) per period; None: no limit.")
    max_cost: float | None = Field(default=None, gt=0, description="Cost per period, in the prices' currency.")
    alert_fraction: float = Field(
        default=0.8, gt=0, le=1, description="Share of a limit at which a soft alert is logged and audited once."
    )
    store_prompts: bool = Field(
        default=False, description="Whether this tenant's audit rows keep full prompts (otherwise sizes and hashes)."
    )


class PriceSpec(SpecModel):
    deployment: str = Field(description="Name of a deployment in 'deployments'.")
    per_1k_input_tokens: float = Field(default=0.0, ge=0, description="Price per 1,000 prompt tokens.")
    per_1k_output_tokens: float = Field(default=0.0, ge=0, description="Price per 1,000 completion tokens.")
    per_compute_second: float = Field(default=0.0, ge=0, description="Price per second of request time.")


class JWTSpec(SpecModel):
    jwks_file: str | None = Field(default=None, description="Local JWKS file with the issuer's public keys.")
    jwks_url: str | None = Field(default=None, description="JWKS URL, fetched at start and when an unknown kid shows.")
    secret_env: str | None = Field(
        default=None, description="Environment variable holding a shared HMAC secret (never the secret itself)."
    )
    algorithms: list[str] = Field(
        default_factory=lambda: ["RS256", "ES256", "PS256", "EdDSA"],
        description="Accepted algorithms; 'none' is never accepted, HS* only with a shared secret.",
    )
    issuer: str | None = Field(default=None, description="Required 'iss' claim.")
    audience: str | None = Field(default=None, description="Required 'aud' claim.")
    leeway_s: float = Field(default=30.0, ge=0, le=300, description="Clock skew allowed on exp and nbf.")
    tenant_claim: str = Field(default="tenant", description="Claim naming the tenant.")
    scopes_claim: str = Field(default="scope", description="Claim with the scopes (space-separated or a list).")
    models_claim: str = Field(default="models", description="Optional claim with the allowed models (a list).")

    @model_validator(mode="after")
    def _one_key_source(self) -> JWTSpec:
        sources = [s for s in (self.jwks_file, self.jwks_url, self.secret_env) if s]
        if len(sources) != 1:
            raise ValueError("set exactly one of jwks_file, jwks_url, secret_env")
        if "none" in {a.lower() for a in self.algorithms}:
            raise ValueError("algorithms: 'none' is never accepted")
        return self


class AccessSpec(SpecModel):
    enabled: bool = Field(default=True, description="Require credentials on every route except /healthz, /readyz.")
    metrics_open: bool = Field(default=False, description="Serve /metrics without credentials.")
    key_cache_ttl_s: float = Field(
        default=60.0, gt=0, le=3600, description="How long a verified key stays cached before the database is asked."
    )
    revocation: Literal["poll", "strict"] = Field(
        default="poll",
        description="poll: other gateways see a revoked key within revocation_poll_ms, no per-request cost; "
        "strict: every gateway refuses it on the next request, for one database read per request.",
    )
    revocation_poll_ms: float = Field(
        default=100.0, ge=10, le=10_000, description="How often each gateway checks whether keys changed elsewhere."
    )
    per_key: RateLimitSpec = Field(default_factory=RateLimitSpec, description="Limits for each API key or JWT subject.")
    per_tenant: RateLimitSpec = Field(default_factory=RateLimitSpec, description="Limits for each tenant in total.")
    budgets: list[BudgetSpec] = Field(default_factory=list, description="Token and cost budgets per tenant.")
    prices: list[PriceSpec] = Field(default_factory=list, description="Price per deployment, for cost and budgets.")
    jwt: JWTSpec | None = Field(default=None, description="Accept JWT bearer tokens as well as API keys.")
    audit_inference: bool = Field(default=True, description="Write an audit row for every inference request.")
    audit_writer: Literal["process", "thread"] = Field(
        default="process",
        description="Who builds, hashes and inserts the audit rows: a process of the gateway's own at the lowest "
        "CPU priority (default), or the database thread inside the gateway, where that CPU contends with requests "
        "for the interpreter and shows in their p99. An in-memory SQLite database always uses the thread.",
    )
    rate_limit_strategy: Literal["sliding-window", "moving-window"] = Field(
        default="sliding-window",
        description="sliding-window: O(1), approximate across window edges; moving-window: exact, O(limit) per check.",
    )
    rate_limit_namespace: str = Field(
        default="default", description="Prefix of the rate-limit counters in Redis; gateways sharing limits share it."
    )
