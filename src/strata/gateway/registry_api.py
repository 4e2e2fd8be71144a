"""Admin API of the model registry, under /v1/admin/registry/: read versions, move stages.

Pushing a version is a CLI job (``strata registry push``: it reads a local folder); everything else is
here too. A promotion of a stage this server serves starts a canary (``strata.registry.canary``) and
answers once the canary takes its first step; with ``canary: false``, or a stage no route here serves,
it moves the stage and answers once the deployments serving it have reloaded. A rollback mid-canary ends
the canary; after one, it moves the stage back and the deployments reload."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, ValidationError
from starlette.responses import Response

from strata.access.audit import AuditEvent
from strata.access.control import AccessControl
from strata.errors import InvalidRequest, NotFound
from strata.gateway.admin_traffic import RolloutOverrides
from strata.gateway.call import Call
from strata.gateway.responses import json_response
from strata.protocol.errors import invalid_request_from
from strata.protocol.requests import WHOLE
from strata.registry.canary import RegistryCanaries
from strata.registry.reference import STAGES
from strata.registry.service import MODEL_NAME, AuditSink, ModelRegistry
from strata.registry.serving import RegistryBinding


class PromoteRequest(RolloutOverrides):
    """The version, and whether it goes through a canary (default) with the route's rollout settings,
    overridden by the fields given here."""

    version: Annotated[int, Field(ge=1), WHOLE]
    canary: bool = True


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
    def __init__(self, registry: ModelRegistry, binding: RegistryBinding, canaries: RegistryCanaries) -> None:
        self.registry = registry
        self.binding = binding
        self.canaries = canaries

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
        actor = call.caller.key_id
        given = sorted(body.model_fields_set - {"version", "canary"})
        if not body.canary and given:
            raise InvalidRequest(f"{given[0]}: rollout settings need canary true", param=given[0])
        if body.canary and self.canaries.serves(name, stage):
            overrides = body.model_dump(exclude={"version", "canary"}, exclude_none=True)
            try:
                canary = await self.canaries.start(name, body.version, stage, overrides, actor=actor)
            except ValidationError as error:  # an override out of bounds, or steps that do not rise to 100
                raise invalid_request_from(error) from None
            return json_response({**await self.registry.stage(name, stage), "reloaded": [], "canary": canary})
        self.canaries.check_idle(name, stage)  # an immediate switch must not cut across a running canary
        result = await self.registry.promote(name, body.version, stage, actor=actor)
        return json_response({**result, "reloaded": await self.binding.follow(name, stage), "canary": None})

    async def rollback_stage(self, call: Call) -> Response:
        name, stage = _name(call), _stage(call)
        actor = call.caller.key_id
        canary = await self.canaries.roll_back(name, stage, actor=actor)
        if canary is not None:  # mid-canary: the stage never moved; its version has all the traffic again
            return json_response({**await self.registry.stage(name, stage), "reloaded": [], "canary": canary})
        result = await self.registry.rollback(name, stage, actor=actor)
        return json_response({**result, "reloaded": await self.binding.follow(name, stage), "canary": None})

    async def canary_status(self, call: Call) -> Response:
        name, stage = _name(call), _stage(call)
        status = self.canaries.status(name, stage)
        if status is None:
            raise NotFound(f"No canary promotion of '{name}@{stage}' on this server.", param="stage", code="no_canary")
        return json_response(status)


def gateway_audit(access: AccessControl) -> AuditSink:
    """Registry events through the gateway's audit recorder (batched into the same hash chain)."""

    async def sink(event: AuditEvent) -> None:
        access.audit(event)

    return sink
