import pytest

from strata.serving.wait_predictor import WaitPredictor


def test_nothing_to_predict_from_before_the_first_request() -> None:
    predictor = WaitPredictor()
    assert not predictor.ready
    assert predictor.drain_rate is None
    assert predictor.drain_s(10) == 0.0
    assert predictor.latency_s(10, 4) == 0.0


def test_the_drain_rate_is_littles_law() -> None:
    predictor = WaitPredictor()
    predictor.observe(hold_s=0.1, answer_s=0.1, load=8)
    assert predictor.ready
    # 8 requests inside, each for 100 ms: 80 slots free per second; 40 requests ahead take half a second.
    assert predictor.drain_rate == pytest.approx(80)
    assert predictor.drain_s(40) == pytest.approx(0.5)
    assert predictor.latency_s(40, 8) == pytest.approx(0.6)
    assert predictor.drain_s(0) == 0.0


def test_a_busier_deployment_answers_later_at_once() -> None:
    predictor = WaitPredictor()
    predictor.observe(hold_s=0.1, answer_s=0.1, load=1)  # timed alone: one request at a time, 100 ms each
    # Now two hold a slot (one in the model, one queued in the replica): a new one waits for a slot to
    # free (50 ms on average) and then for the one ahead of it inside (200 ms), before any average has moved.
    assert predictor.latency_s(0.5, 2) == pytest.approx(0.25)


def test_a_stream_is_answered_before_it_frees_its_slot() -> None:
    predictor = WaitPredictor()
    predictor.observe(hold_s=2.0, answer_s=0.05, load=4)  # first token after 50 ms, the slot held for 2 s
    assert predictor.latency_s(4, 4) == pytest.approx(2.05)
    assert predictor.latency_s(0, 4) == pytest.approx(0.05)


def test_the_averages_follow_a_model_that_slows_down() -> None:
    predictor = WaitPredictor()
    for _ in range(100):
        predictor.observe(hold_s=0.01, answer_s=0.01, load=4)
    for _ in range(60):
        predictor.observe(hold_s=0.1, answer_s=0.1, load=4)
    assert predictor.hold_s is not None
    assert 0.09 < predictor.hold_s < 0.1
    assert predictor.drain_rate == pytest.approx(4 / predictor.hold_s)
    assert predictor.samples == 160


def test_a_failure_frees_its_slot_but_says_nothing_of_answers() -> None:
    predictor = WaitPredictor()
    predictor.observe(hold_s=0.2, answer_s=0.2, load=1)
    predictor.observe(hold_s=0.0, answer_s=None, load=1)
    assert predictor.answer_s == pytest.approx(0.2)
    assert predictor.hold_s is not None
    assert predictor.hold_s < 0.2
