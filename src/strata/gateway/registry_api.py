"""Admin API of the model registry, under /v1/admin/registry/: read versions, move stages.

Pushing a version is a CLI job (``strata registry push``: it reads a local folder); everything else is
here too. A promotion or rollback answers once the deployments serving that stage have reloaded."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from starlette.responses import Response

from strata.access.audit import AuditEvent
from strata.access.control import AccessControl
from strata.errors import NotFound
from strata.gateway.call import Call
from strata.gateway.responses import json_response
from strata.protocol.requests import WHOLE, RequestModel
from strata.registry.reference import STAGES
from strata.registry.service import MODEL_NAME, AuditSink, ModelRegistry
from strata.registry.serving import RegistryBinding


class PromoteRequest(RequestModel):
    version: Annotated[int, Field(ge=1), WHOLE]


# Path parameters name things: one that cannot exist (a malformed name, an unknown stage) is a 404
# naming the parameter, like one that merely does not exist.


def _name(call: Call) -> str:
    name = call.params["name"]
    if not MODEL_NAME.match(name):
        raise NotFound(f"No registered model '{name}'.", param="name", code="model_not_registered")
    return name


def _stage(call: Call) -> str:
    stage = call.params["stage"]
    if stage not in STAGES:
        raise NotFound(f"No stage '{stage}' (stages: {', '.join(STAGES)}).", param="stage", code="stage_not_found")
    return stage


def _version(call: Call) -> int:
    text = call.params["version"]
    if not text.isdigit() or text.startswith("0"):
        raise NotFound(f"No version '{text}' (versions are 1, 2, ...).", param="version", code="version_not_found")
    return int(text)


class RegistryAPI:
    def __init__(self, registry: ModelRegistry, binding: RegistryBinding) -> None:
        self.registry = registry
        self.binding = binding

    async def list_registered_models(self, call: Call) -> Response:
        models = await self.registry.list_models()
        return json_response({"object": "list", "data": models, "serving": self.binding.snapshot()})

    async def list_model_versions(self, call: Call) -> Response:
        versions = await self.registry.list_versions(_name(call))
        return json_response({"object": "list", "data": versions})

    async def get_model_version(self, call: Call) -> Response:
        return json_response(await self.registry.get(_name(call), _version(call)))

    async def promote_stage(self, call: Call) -> Response:
        name, stage = _name(call), _stage(call)
        body = call.parse(PromoteRequest)
        result = await self.registry.promote(name, body.version, stage, actor=call.caller.key_id)
        return json_response({**result, "reloaded": await self.binding.follow(name, stage)})

    async def rollback_stage(self, call: Call) -> Response:
        name, stage = _name(call), _stage(call)
        result = await self.registry.rollback(name, stage, actor=call.caller.key_id)
        return json_response({**result, "reloaded": await self.binding.follow(name, stage)})


def gateway_audit(access: AccessControl) -> AuditSink:
    """Registry events through the gateway's audit recorder (batched into the same hash chain)."""

    async def sink(event: AuditEvent) -> None:
        access.audit(event)

    return sink
