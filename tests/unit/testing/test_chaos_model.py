import time
from pathlib import Path

from strata.testing.chaos import ChaosControl, ChaosModel, Fault, ReplicaCrash


def _models(tmp_path: Path, count: int) -> tuple[ChaosControl, list[ChaosModel]]:
    control = ChaosControl(tmp_path / "control.json")
    return control, [ChaosModel(str(control.path)) for _ in range(count)]


def _outcome(model: ChaosModel) -> str:
    try:
        model.predict_batch([1])
    except RuntimeError:
        return "raised"
    except ReplicaCrash:
        return "crashed"
    return "ok"


def test_a_fault_for_one_replica_is_claimed_by_exactly_one(tmp_path: Path) -> None:
    control, models = _models(tmp_path, 3)
    assert [_outcome(m) for m in models] == ["ok"] * 3  # no control file yet: healthy
    control.set(Fault("crash", replicas=1))
    assert sorted(_outcome(m) for m in models) == ["crashed", "ok", "ok"]
    restarted = ChaosModel(str(control.path))  # a fresh replica claims nothing already claimed
    assert _outcome(restarted) == "ok"


def test_a_fault_for_all_replicas_and_its_clearing(tmp_path: Path) -> None:
    control, models = _models(tmp_path, 2)
    control.set(Fault("raise"))
    assert [_outcome(m) for m in models] == ["raised", "raised"]
    control.clear()
    assert [_outcome(m) for m in models] == ["ok", "ok"]


def test_slow_multiplies_the_call_time(tmp_path: Path) -> None:
    control = ChaosControl(tmp_path / "control.json")
    model = ChaosModel(str(control.path), sleep_ms=20)
    control.set(Fault("slow", factor=5))
    started = time.perf_counter()
    assert model.predict_batch(["a", "b"]) == ["a", "b"]
    assert time.perf_counter() - started >= 0.1  # a lower bound: sleeping never takes less
