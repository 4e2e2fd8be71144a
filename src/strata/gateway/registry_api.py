"""Admin API of the model registry, under /v1/admin/registry/: read versions, move stages.

Pushing a version is a CLI job (``strata registry push``: it reads a local folder); everything else is
here too. A promotion or rollback answers once the deployments serving that stage have reloaded."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from starlette.responses import Response

from strata.access.audit import AuditEvent
from strata.access.control import AccessControl
from strata.errors import InvalidRequest
from strata.gateway.call import Call
from strata.gateway.responses import json_response
from strata.protocol.requests import WHOLE, RequestModel
from strata.registry.service import AuditSink, ModelRegistry, check_model_name, check_stage
from strata.registry.serving import RegistryBinding


class PromoteRequest(RequestModel):
    version: Annotated[int, Field(ge=1), WHOLE]


def _version_param(call: Call) -> int:
    text = call.params["version"]
    if not text.isdigit() or int(text) < 1:
        raise InvalidRequest(f"version: '{text}' is not a version number (1, 2, ...)", param="version")
    return int(text)


class RegistryAPI:
    def __init__(self, registry: ModelRegistry, binding: RegistryBinding) -> None:
        self.registry = registry
        self.binding = binding

    async def list_models(self, call: Call) -> Response:
        models = await self.registry.list_models()
        return json_response({"object": "list", "data": models, "serving": self.binding.snapshot()})

    async def list_versions(self, call: Call) -> Response:
        versions = await self.registry.list_versions(check_model_name(call.params["name"]))
        return json_response({"object": "list", "data": versions})

    async def get_version(self, call: Call) -> Response:
        return json_response(await self.registry.get(check_model_name(call.params["name"]), _version_param(call)))

    async def promote(self, call: Call) -> Response:
        name, stage = check_model_name(call.params["name"]), check_stage(call.params["stage"])
        body = call.parse(PromoteRequest)
        result = await self.registry.promote(name, body.version, stage, actor=call.caller.key_id)
        return json_response({**result, "reloaded": await self.binding.follow(name, stage)})

    async def rollback(self, call: Call) -> Response:
        name, stage = check_model_name(call.params["name"]), check_stage(call.params["stage"])
        result = await self.registry.rollback(name, stage, actor=call.caller.key_id)
        return json_response({**result, "reloaded": await self.binding.follow(name, stage)})


def gateway_audit(access: AccessControl) -> AuditSink:
    """Registry events through the gateway's audit recorder (batched into the same hash chain)."""

    async def sink(event: AuditEvent) -> None:
        access.audit(event)

    return sink
