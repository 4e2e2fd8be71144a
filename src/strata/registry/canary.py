"""A registry promotion as a canary: the new version loads beside the one a stage names, takes traffic in
the route's rollout steps, and either wins (the stage pointer moves) or is rolled back (it never moved).

One promotion of a ``(model, stage)`` at a time:
1. Check everything first (the version exists and differs; each deployment serving ``registry:NAME@STAGE``
   is the only version with traffic on its routes; the rollout overrides are valid): a refusal changes nothing.
2. Load: per such deployment, a sibling deployment serving the new version's verified folder.
3. Each route serving it gets the sibling as one more version and starts its rollout (steps, window
   analysis and automatic rollback are ``strata.serving.rollout``'s).
4. Watch: every rollout event is audited; one rolled back (a regression, an operator) rolls back all;
   when all reach 100 % the stage pointer moves in the database, and each deployment adopts its
   sibling's replicas in one step (no reload: the warmed canary replicas are the new version).
5. The losing replicas (the old version's, or the canary's) stop once they finish what they hold.

The stage pointer moves only at the end, so the database and what is served agree whenever no canary
runs, and a server restarted mid-canary serves the stage's (old) version.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from strata.errors import Conflict, StrataError
from strata.registry.reference import Reference
from strata.registry.service import ModelRegistry, check_stage
from strata.registry.serving import RegistryBinding, Served
from strata.serving.deployment import Deployment, retire_replicas
from strata.serving.rollout import Rollout, RolloutPhase
from strata.serving.route import Route
from strata.serving.runtime import Replica

log = logging.getLogger(__name__)

WATCH_S = 0.1  # how often a canary's rollouts are read (the route judges each request itself)


@dataclass(slots=True)
class Leg:
    """One deployment serving the stage, the canary loaded beside it, and the routes they share."""

    deployment: Deployment
    served: Served
    canary: Deployment | None = None
    routes: list[tuple[Route, str, str]] = field(default_factory=list)  # (route, stable version, canary version)


@dataclass(slots=True)
class Promotion:
    model: str
    stage: str
    version: int
    previous: int
    actor: str | None
    legs: list[Leg]
    overrides: dict[str, Any]  # of each route's rollout settings (checked against every route at the start)
    phase: str = "loading"  # loading -> running -> completed | rolled_back | failed
    reason: str = ""
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    signature: str | None = None  # of the new version, once materialised
    started: dict[str, Rollout] = field(default_factory=dict)  # this promotion's rollout, per route
    ending: bool = False  # the watcher is completing or abandoning it: let it finish
    audited: dict[str, int] = field(default_factory=dict)  # rollout events already audited, per route
    watcher: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        return self.phase in ("loading", "running")

    def rollouts(self) -> list[tuple[Route, Rollout]]:
        """This promotion's rollouts (by identity: a route's later or earlier rollouts are not its own)."""
        return [
            (route, self.started[route.name])
            for leg in self.legs
            for route, _, _ in leg.routes
            if route.name in self.started
        ]

    def status(self) -> dict[str, Any]:
        return {
            "object": "registry.canary",
            "model": self.model,
            "stage": self.stage,
            "version": self.version,
            "previous": self.previous,
            "phase": self.phase,
            "reason": self.reason,
            "started_at": int(self.started_at),
            "ended_at": None if self.ended_at is None else int(self.ended_at),
            "deployments": [
                {"deployment": leg.deployment.name, "canary": None if leg.canary is None else leg.canary.name}
                for leg in self.legs
            ],
            "routes": [
                {
                    "route": route.name,
                    "stable": stable,
                    "canary": canary,
                    "rollout": self.started[route.name].status() if route.name in self.started else None,
                }
                for leg in self.legs
                for route, stable, canary in leg.routes
            ],
        }


class RegistryCanaries:
    """The promotions of this server's registry deployments that go through a canary."""

    def __init__(self, binding: RegistryBinding, registry: ModelRegistry) -> None:
        self.binding = binding
        self.registry = registry
        self.server = binding.server
        self._promotions: dict[tuple[str, str], Promotion] = {}
        self._starting = asyncio.Lock()  # two promotions racing past the checks: the second one sees the first

    def status(self, model: str, stage: str) -> dict[str, Any] | None:
        promotion = self._promotions.get((model, stage))
        return None if promotion is None else promotion.status()

    def serves(self, model: str, stage: str) -> bool:
        """Whether a route of this server serves ``registry:MODEL@STAGE`` (a promotion can canary)."""
        routed = {id(d) for route in self.server.routes.values() for d in route.versions.values()}
        return any(leg.served.version is not None and id(leg.deployment) in routed for leg in self._legs(model, stage))

    def check_idle(self, model: str, stage: str) -> None:
        promotion = self._promotions.get((model, stage))
        if promotion is not None and promotion.active:
            raise Conflict(
                f"A canary promotion of '{model}@{stage}' to version {promotion.version} is running; "
                "roll it back or wait for it to end."
            )

    async def start(
        self, model: str, version: int, stage: str, overrides: dict[str, Any], *, actor: str | None
    ) -> dict[str, Any]:
        """Steps 1-3: answers once the canary serves its first step (or failed to load)."""
        async with self._starting:
            promotion = await self._check(model, version, stage, overrides, actor)
            self._promotions[(model, stage)] = promotion
        await self._audit(promotion, "registry.canary.started", actor, {"previous": promotion.previous})
        try:
            await self._load(promotion)
        except Exception as error:  # boundary: a version that cannot load is a failed promotion, not a 500
            log.exception("%s@%s: canary of version %d failed to load", model, stage, version)
            if promotion.active:
                await self._end(promotion, "failed", f"version {version} failed to load: {error}", actor=None)
            await self._discard_canaries(promotion)
            return promotion.status()
        if not promotion.active:  # rolled back by an operator while it loaded
            await self._discard_canaries(promotion)
            return promotion.status()
        self._route_traffic(promotion)
        promotion.phase = "running"
        promotion.watcher = asyncio.create_task(self._watch(promotion), name=f"canary-{model}@{stage}")
        return promotion.status()

    async def roll_back(self, model: str, stage: str, *, actor: str | None) -> dict[str, Any] | None:
        """All traffic back to the version the stage names (it never moved). None: no canary running."""
        promotion = self._promotions.get((model, stage))
        if promotion is not None and promotion.ending and promotion.watcher is not None:
            # It is ending on its own: wait, then roll back from where it ends (a completed canary: the stage).
            await asyncio.shield(promotion.watcher)
            return None if promotion.phase == "completed" else promotion.status()
        if promotion is None or not promotion.active:
            return None
        if promotion.watcher is not None:
            promotion.watcher.cancel()
            await asyncio.gather(promotion.watcher, return_exceptions=True)
        loading = promotion.phase == "loading"
        reason = f"rolled back by {actor or 'an operator'}"
        for route, rollout in promotion.rollouts():
            if rollout.phase is RolloutPhase.RUNNING and rollout.canary in route.versions:
                route.abort(reason)  # all traffic back on the stable version at once
        await self._end(promotion, "rolled_back", reason, actor=actor, action="registry.rollback")
        if not loading:  # a loading one is discarded by ``start`` once its load returns
            await self._discard_canaries(promotion)
        return promotion.status()

    async def stop(self) -> None:
        """Server shutdown: stop watching (the server stops every deployment, canaries included)."""
        watchers = [p.watcher for p in self._promotions.values() if p.watcher is not None]
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)

    # 1. Check

    def _legs(self, model: str, stage: str) -> list[Leg]:
        return [
            Leg(self.server.deployments[name], served)
            for name, served in self.binding.served.items()
            if served.reference.name == model and served.reference.stage == stage
        ]

    async def _check(
        self, model: str, version: int, stage: str, overrides: dict[str, Any], actor: str | None
    ) -> Promotion:
        check_stage(stage)
        self.check_idle(model, stage)
        await self.registry.get(model, version)  # 404 naming the version
        current = await self.registry.stage(model, stage)  # 404 when the stage names nothing yet
        if current["version"] == version:
            raise Conflict(f"Stage '{stage}' of '{model}' already names version {version}.")
        legs = self._legs(model, stage)
        for leg in legs:
            if leg.deployment.managed:
                raise Conflict(
                    f"deployment '{leg.deployment.name}': its runtime manages replicas; promote with canary false"
                )
            for route in self.server.routes.values():
                for name, deployment in route.versions.items():
                    if deployment is not leg.deployment:
                        continue
                    _check_route(route, name)
                    route.rollout_spec(overrides)  # pydantic's ValidationError (the caller's 400) before anything loads
                    leg.routes.append((route, name, f"{name}@v{version}"))
        if not any(leg.routes for leg in legs):
            raise Conflict(f"No route serves '{model}@{stage}' on this server: promote with canary false.")
        return Promotion(model, stage, version, int(current["version"]), actor, legs, overrides)

    # 2. Load, 3. route

    async def _load(self, promotion: Promotion) -> None:
        reference = Reference(promotion.model, promotion.version, None)
        row, local = await self.registry.materialise(reference, self.binding.cache)
        promotion.signature = row.signature
        for leg in promotion.legs:
            model = leg.deployment.model.model_copy(update={"path": str(local.folder)})
            leg.canary = leg.deployment.sibling(f"{leg.deployment.name}@v{row.version}", model)
            await leg.canary.start()
            if not leg.canary.ready:
                errors = "; ".join(leg.canary.load_errors.values()) or "no replica became ready"
                raise StrataError(f"{leg.canary.name}: {errors}")

    def _route_traffic(self, promotion: Promotion) -> None:
        for leg in promotion.legs:
            assert leg.canary is not None
            self.server.deployments[leg.canary.name] = leg.canary  # served by it: its requests find their metrics
            for route, _, canary in leg.routes:
                route.add_version(canary, leg.canary)
                spec = route.rollout_spec(promotion.overrides)
                promotion.started[route.name] = route.start_rollout(canary, spec)

    # 4. Watch

    async def _watch(self, promotion: Promotion) -> None:
        try:
            while not await self._step(promotion):  # noqa: ASYNC110 - a rollout has no event to wait on
                await asyncio.sleep(WATCH_S)
        except Exception as error:  # boundary: a watcher that died would leave the canary serving unwatched
            log.exception("%s@%s: the canary watcher failed", promotion.model, promotion.stage)
            if promotion.active:
                await self._abandon(promotion, f"the canary watcher failed: {error}")

    async def _step(self, promotion: Promotion) -> bool:
        """Audit what the rollouts did since the last look; True once the promotion ended."""
        await self._audit_steps(promotion)
        rollouts = promotion.rollouts()
        failed = next((r for _, r in rollouts if r.phase is RolloutPhase.ROLLED_BACK), None)
        if failed is not None:
            promotion.ending = True
            await self._abandon(promotion, f"{failed.canary}: {failed.reason}")
            return True
        if all(r.phase is RolloutPhase.PROMOTED for _, r in rollouts):
            promotion.ending = True
            await self._complete(promotion)
            return True
        return False

    async def _audit_steps(self, promotion: Promotion) -> None:
        for route, rollout in promotion.rollouts():
            seen = promotion.audited.get(route.name, 0)
            for event in rollout.events[seen:]:
                await self._audit(promotion, "registry.canary.step", None, {"route": route.name, "what": event.what})
            promotion.audited[route.name] = len(rollout.events)

    async def _abandon(self, promotion: Promotion, reason: str) -> None:
        """Automatic rollback: the route's rollout already sent its traffic back to stable."""
        for route, rollout in promotion.rollouts():
            if rollout.phase is RolloutPhase.RUNNING:
                route.abort(f"rolled back with {reason}")
        await self._end(promotion, "rolled_back", reason, actor=None, action="registry.canary.rolled_back")
        await self._discard_canaries(promotion)

    async def _complete(self, promotion: Promotion) -> None:
        try:
            await self.registry.promote(promotion.model, promotion.version, promotion.stage, actor=promotion.actor)
        except StrataError as error:  # e.g. another writer moved the stage meanwhile: the stable version keeps serving
            for leg in promotion.legs:
                for route, stable, canary in leg.routes:
                    route.set_weights({stable: 100.0, canary: 0.0})
            await self._end(promotion, "failed", f"could not move the stage: {error.message}", actor=None)
            await self._discard_canaries(promotion)
            return
        async with self.binding.lock:
            for leg in promotion.legs:
                assert leg.canary is not None
                await leg.canary.stop_supervising()
            replaced = [self._adopt(promotion, leg) for leg in promotion.legs]  # one step: no request sees half
        promotion.phase, promotion.ended_at = "completed", time.time()
        old = [replica for replicas in replaced for replica in replicas]
        try:
            await retire_replicas(old)
        except asyncio.CancelledError:  # the server is stopping: no time to drain, and nothing else stops them
            await asyncio.gather(*(replica.stop() for replica in old), return_exceptions=True)
            raise

    def _adopt(self, promotion: Promotion, leg: Leg) -> list[Replica]:
        assert leg.canary is not None
        replaced = leg.deployment.adopt(leg.canary)
        for route, stable, canary in leg.routes:
            route.remove_version(canary, to=stable)  # the stable version's deployment serves the new replicas now
        self.server.deployments.pop(leg.canary.name, None)
        leg.served.version, leg.served.signature = promotion.version, promotion.signature
        return replaced

    # 5. End

    async def _discard_canaries(self, promotion: Promotion) -> None:
        for leg in promotion.legs:
            for route, stable, canary in leg.routes:
                if canary in route.versions:
                    route.remove_version(canary, to=stable)
            if leg.canary is not None:
                self.server.deployments.pop(leg.canary.name, None)
        canaries = [leg.canary for leg in promotion.legs if leg.canary is not None]
        try:
            await asyncio.gather(*(canary.retire() for canary in canaries))
        except asyncio.CancelledError:  # the server is stopping: no time to drain, and nothing else stops them
            await asyncio.gather(*(canary.stop() for canary in canaries), return_exceptions=True)
            raise

    async def _end(
        self, promotion: Promotion, phase: str, reason: str, *, actor: str | None, action: str | None = None
    ) -> None:
        promotion.phase, promotion.reason, promotion.ended_at = phase, reason, time.time()
        await self._audit_steps(promotion)
        detail = {"reason": reason, "version": promotion.previous, "from": promotion.version}
        await self._audit(promotion, action or f"registry.canary.{phase}", actor, detail)

    async def _audit(self, promotion: Promotion, action: str, actor: str | None, detail: dict[str, Any]) -> None:
        base = {"model": promotion.model, "stage": promotion.stage, "version": promotion.version, "canary": True}
        await self.registry.audit_event(action, actor, base | detail)


def _check_route(route: Route, version: str) -> None:
    weights = route.split.weights
    others = [name for name, weight in weights.items() if name != version and weight > 0]
    if others:
        raise Conflict(
            f"Route '{route.name}' splits traffic over {sorted([version, *others])}: a canary needs its "
            "registry version to carry all of it; set the weights or promote with canary false."
        )
    if route.rollout is not None and route.rollout.phase is RolloutPhase.RUNNING:
        raise Conflict(f"Route '{route.name}' has a rollout running; promote or abort it first.")
