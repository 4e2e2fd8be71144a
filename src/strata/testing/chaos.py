"""Fault injection for chaos tests: a batch model whose behaviour a test switches at run time
through a control file (never through the serving API), and the test's handle on that file.

A fault applies to ``replicas`` replicas (the first ones to see it claim it, atomically, with an
O_EXCL file) or to all of them. Kinds:

* ``crash`` - the replica's worker dies (what a segfault or an OOM kill is to a real replica);
* ``slow`` - every call takes ``factor`` times as long;
* ``raise`` - every call raises;
* ``hang`` - the call blocks for ``seconds``: the replica stops making progress.

A restarted replica is a new model object: it claims nothing from faults already claimed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

FaultKind = Literal["crash", "slow", "raise", "hang"]


class ReplicaCrash(BaseException):
    """Not an Exception: the batcher's per-batch error handling must not catch it, so the worker dies."""


@dataclass(frozen=True, slots=True)
class Fault:
    kind: FaultKind
    replicas: int | None = None  # None: every replica
    factor: float = 10.0  # slow
    seconds: float = 30.0  # hang

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "replicas": self.replicas, "factor": self.factor, "seconds": self.seconds}


@dataclass(slots=True)
class ChaosControl:
    """The test's side: ``set`` a new list of faults (a new epoch), ``clear`` them all."""

    path: Path
    epoch: int = 0

    def set(self, *faults: Fault) -> None:
        self.epoch += 1
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"epoch": self.epoch, "faults": [f.as_dict() for f in faults]}))
        os.replace(temporary, self.path)  # atomic: a model never reads half a file

    def clear(self) -> None:
        self.set()


@dataclass(slots=True)
class _Active:
    epoch: int = -1
    faults: list[Fault] = field(default_factory=list)


class ChaosModel:
    """Echoes its inputs after ``sleep_ms`` per batch, unless a fault says otherwise."""

    def __init__(self, control_file: str, sleep_ms: float = 0.0) -> None:
        self._control = Path(control_file)
        self._sleep_s = sleep_ms / 1000.0
        self._seen: tuple[int, int] | None = None
        self._active = _Active()

    def warmup(self) -> None:
        self._refresh()

    def predict_batch(self, inputs: Sequence[Any]) -> list[Any]:
        self._refresh()
        slow = 1.0
        for fault in self._active.faults:
            if fault.kind == "crash":
                raise ReplicaCrash("chaos: this replica's worker dies")
            if fault.kind == "raise":
                raise RuntimeError("chaos: the model raises")
            if fault.kind == "hang":
                time.sleep(fault.seconds)
            if fault.kind == "slow":
                slow = fault.factor
        if self._sleep_s:
            time.sleep(self._sleep_s * slow)
        return list(inputs)

    def _refresh(self) -> None:
        try:
            stat = self._control.stat()
        except FileNotFoundError:
            return
        if self._seen == (stat.st_mtime_ns, stat.st_size):
            return
        self._seen = (stat.st_mtime_ns, stat.st_size)
        data = json.loads(self._control.read_text())
        if data["epoch"] == self._active.epoch:
            return
        faults = [Fault(**fault) for fault in data["faults"]]
        mine = [f for i, f in enumerate(faults) if f.replicas is None or self._claim(data["epoch"], i, f.replicas)]
        self._active = _Active(data["epoch"], mine)

    def _claim(self, epoch: int, index: int, replicas: int) -> bool:
        for slot in range(replicas):
            claim = f"{self._control}.e{epoch}.f{index}.r{slot}"
            try:
                os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                continue
            return True
        return False
