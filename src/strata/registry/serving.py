"""Deployments whose model names the registry: their verified local folders, and the version each serves.

At start, every ``registry:NAME@...`` path becomes the folder its version materialises to (each file
checked against the manifest). After a promotion or rollback, deployments that serve the stage reload
in place, one replica at a time, each new replica warmed before it replaces the old (``Deployment.reload``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strata.registry.reference import REGISTRY_PREFIX, Reference
from strata.registry.service import ModelRegistry
from strata.serving.deployment import Deployment
from strata.serving.server import ModelServer

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Served:
    reference: Reference
    version: int | None = None  # None until materialised
    signature: str | None = None


class RegistryBinding:
    def __init__(self, server: ModelServer, registry: ModelRegistry, cache: Path | None = None) -> None:
        self.server = server
        self.registry = registry
        self.cache = cache
        self.served: dict[str, Served] = {}
        for name, deployment in server.deployments.items():
            path = deployment.model.path
            if path is not None and path.startswith(REGISTRY_PREFIX):
                self.served[name] = Served(Reference.parse(path))
        self.lock = asyncio.Lock()  # one reload at a time: two promotions in a row apply in order

    async def materialise(self) -> None:
        """Before any replica loads: point each registry deployment at its verified local folder."""
        async with self.lock:
            for name, served in self.served.items():
                await self._bind(self.server.deployments[name], served, started=False)

    async def _bind(self, deployment: Deployment, served: Served, *, started: bool = True) -> bool:
        row, local = await self.registry.materialise(served.reference, self.cache)
        if row.version == served.version:
            return False
        if local.repaired:
            log.warning(
                "%s: %d cached file(s) did not match the manifest and were fetched again", row.model, local.repaired
            )
        model = deployment.model.model_copy(update={"path": str(local.folder)})
        if started:
            deployment.model = model  # the caller reloads the replicas
        else:
            deployment.rebind(model)
        served.version, served.signature = row.version, row.signature
        return True

    async def follow(self, model: str, stage: str) -> list[dict[str, Any]]:
        """Deployments serving ``model@stage`` switch to the version the stage names now (a rolling reload)."""
        reloaded = []
        async with self.lock:
            for name, served in self.served.items():
                if served.reference.name != model or served.reference.stage != stage:
                    continue
                deployment = self.server.deployments[name]
                before, before_model, before_signature = served.version, deployment.model, served.signature
                error = None
                if await self._bind(deployment, served):
                    log.info("%s: reloading %s version %s -> %s", name, model, before, served.version)
                    try:
                        await deployment.reload(deployment.model)
                    except Exception as failure:  # boundary: the old version keeps serving, and says so
                        log.exception("%s: reloading %s failed; version %s keeps serving", name, model, before)
                        deployment.model, served.version, served.signature = before_model, before, before_signature
                        error = str(failure)
                reloaded.append({"deployment": name, "version": served.version, "previous": before, "error": error})
        return reloaded

    def snapshot(self) -> list[dict[str, Any]]:
        return [
            {"deployment": name, "reference": str(s.reference), "version": s.version, "signature": s.signature}
            for name, s in self.served.items()
        ]
