import pytest

from strata.serving.wait_predictor import WaitPredictor


def test_nothing_to_predict_from_before_the_first_request() -> None:
    predictor = WaitPredictor()
    assert not predictor.ready
    assert predictor.drain_s(10, 4) == 0.0
    assert predictor.latency_s(10, 4) == 0.0


def test_the_drain_rate_is_the_limit_over_the_hold_time() -> None:
    predictor = WaitPredictor()
    predictor.observe(hold_s=0.1, answer_s=0.1)
    assert predictor.ready
    # 8 slots each freed every 100 ms: 80 per second; 40 requests ahead take half a second.
    assert predictor.drain_s(40, 8) == pytest.approx(0.5)
    assert predictor.latency_s(40, 8) == pytest.approx(0.6)
    assert predictor.drain_s(0, 8) == 0.0


def test_a_stream_is_answered_before_it_frees_its_slot() -> None:
    predictor = WaitPredictor()
    predictor.observe(hold_s=2.0, answer_s=0.05)  # first token after 50 ms, the slot held for 2 s
    assert predictor.latency_s(4, 4) == pytest.approx(2.05)
    assert predictor.latency_s(0, 4) == pytest.approx(0.05)


def test_the_averages_follow_a_model_that_slows_down() -> None:
    predictor = WaitPredictor()
    for _ in range(100):
        predictor.observe(hold_s=0.01, answer_s=0.01)
    for _ in range(60):
        predictor.observe(hold_s=0.1, answer_s=0.1)
    assert predictor.hold_s is not None and 0.09 < predictor.hold_s < 0.1
    assert predictor.samples == 160


def test_a_failure_frees_its_slot_but_says_nothing_of_answers() -> None:
    predictor = WaitPredictor()
    predictor.observe(hold_s=0.2, answer_s=0.2)
    predictor.observe(hold_s=0.0, answer_s=None)
    assert predictor.answer_s == pytest.approx(0.2)
    assert predictor.hold_s is not None and predictor.hold_s < 0.2
