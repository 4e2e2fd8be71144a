"""``registry:NAME@VERSION`` and ``registry:NAME@STAGE``: how a spec names a registered model version.
Kept free of the database and storage imports: the spec validates references with it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

from strata.errors import SpecError

Stage = Literal["staging", "production", "archived"]
STAGES: tuple[str, ...] = get_args(Stage)
RegistryTask = Literal["generate", "embed", "predict"]
TASKS: tuple[str, ...] = get_args(RegistryTask)
REGISTRY_PREFIX = "registry:"
_REFERENCE = re.compile(r"^registry:(?P<name>[a-z0-9][a-z0-9._-]{0,63})@(?P<at>[0-9]+|[a-z]+)$")


@dataclass(frozen=True, slots=True)
class Reference:
    """``registry:NAME@VERSION`` or ``registry:NAME@STAGE``."""

    name: str
    version: int | None
    stage: str | None

    @classmethod
    def parse(cls, text: str, param: str = "path") -> Reference:
        match = _REFERENCE.match(text)
        if match is None:
            raise SpecError(f"{param}: '{text}' is not registry:NAME@VERSION or registry:NAME@STAGE", param=param)
        at = match["at"]
        if at.isdigit():
            return cls(match["name"], int(at), None)
        if at not in STAGES:
            raise SpecError(f"{param}: unknown stage '{at}' (stages: {', '.join(STAGES)})", param=param)
        return cls(match["name"], None, at)

    def __str__(self) -> str:
        return f"{REGISTRY_PREFIX}{self.name}@{self.version if self.version is not None else self.stage}"
