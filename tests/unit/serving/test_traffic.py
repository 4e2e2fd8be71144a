import itertools
from collections import Counter

import pytest

from strata.serving.traffic import TrafficSplit


def test_split_is_exact_over_each_hundred() -> None:
    split = TrafficSplit({"stable": 95, "canary": 5})
    picks = Counter(split.pick() for _ in range(1000))
    assert picks == {"stable": 950, "canary": 50}


def test_canary_picks_are_spread_not_bunched() -> None:
    split = TrafficSplit({"stable": 90, "canary": 10})
    picks = [split.pick() for _ in range(100)]
    positions = [i for i, name in enumerate(picks) if name == "canary"]
    assert all(b - a == 10 for a, b in itertools.pairwise(positions))


def test_blue_green_switch_is_instant() -> None:
    split = TrafficSplit({"blue": 100, "green": 0})
    assert {split.pick() for _ in range(10)} == {"blue"}
    split.set_weights({"blue": 0, "green": 100})
    assert {split.pick() for _ in range(10)} == {"green"}
    split.set_weights({"blue": 100, "green": 0})
    assert {split.pick() for _ in range(10)} == {"blue"}


def test_sticky_keys_stay_and_follow_the_weights() -> None:
    split = TrafficSplit({"stable": 50, "canary": 50})
    assert all(split.pick("user-7") == split.pick("user-7") for _ in range(10))
    share = Counter(split.pick(f"user-{i}") for i in range(2000))
    assert 850 < share["canary"] < 1150
    split.set_weights({"stable": 100, "canary": 0})
    assert {split.pick(f"user-{i}") for i in range(200)} == {"stable"}


@pytest.mark.parametrize("weights", [{"a": 50, "b": 40}, {"a": 110, "b": -10}])
def test_bad_weights_are_refused(weights: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="add up to 100"):
        TrafficSplit(weights)
