from strata.serving.concurrency_limit import AIMDLimit


def test_backs_off_on_slow_or_failed_samples_and_floors() -> None:
    limit = AIMDLimit(initial=20, minimum=2, maximum=20, target_s=0.1)
    limit.on_sample(0.5, ok=True, in_flight=20)
    assert limit.limit == 18
    for _ in range(100):
        limit.on_sample(0.01, ok=False, in_flight=1)
    assert limit.limit == 2


def test_grows_only_while_used_and_caps() -> None:
    limit = AIMDLimit(initial=4, minimum=1, maximum=6, target_s=0.1)
    for _ in range(50):
        limit.on_sample(0.01, ok=True, in_flight=0)  # idle: no reason to grow
    assert limit.limit == 4
    for _ in range(200):
        limit.on_sample(0.01, ok=True, in_flight=limit.limit)
    assert limit.limit == 6
