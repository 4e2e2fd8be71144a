from strata.serving.fair_queue import FairQueue


def _drain(queue: FairQueue[str]) -> list[str]:
    order = []
    while (item := queue.pop()) is not None:
        order.append(item)
    return order


def test_one_tenant_is_fifo() -> None:
    queue: FairQueue[str] = FairQueue()
    for index in range(5):
        queue.push("a", f"a{index}")
    assert len(queue) == 5
    assert _drain(queue) == [f"a{index}" for index in range(5)]
    assert len(queue) == 0


def test_a_flood_does_not_delay_a_quiet_tenant() -> None:
    queue: FairQueue[str] = FairQueue()
    for index in range(100):
        queue.push("flood", f"f{index}")
    queue.pop()  # the flood has been served for a while
    assert queue.ahead_of_new("quiet") == 0  # a tie with the flood's next one, and the lighter user wins ties
    queue.push("quiet", "q0")
    queue.push("quiet", "q1")
    order = _drain(queue)
    assert order.index("q0") == 0
    assert order.index("q1") == 2  # then turn about: not after the 99 of the flood


def test_weights_share_turns_in_proportion() -> None:
    queue: FairQueue[str] = FairQueue({"gold": 3.0})
    for index in range(30):
        queue.push("gold", f"g{index}")
        queue.push("free", f"f{index}")
    first_twenty = _drain(queue)[:20]
    gold = sum(item.startswith("g") for item in first_twenty)
    assert gold == 15  # 3 : 1


def test_an_idle_tenant_banks_no_credit() -> None:
    queue: FairQueue[str] = FairQueue()
    queue.push("a", "a0")
    queue.pop()
    for index in range(10):
        queue.push("b", f"b{index}")
    for _ in range(5):
        queue.pop()
    for index in range(10):  # 'a' was idle while 'b' was served: it does not now get 5 turns in a row
        queue.push("a", f"a{index + 1}")
    order = _drain(queue)
    assert order[:4] in (["a1", "b5", "a2", "b6"], ["b5", "a1", "b6", "a2"])


def test_ahead_of_new_counts_the_requests_served_first() -> None:
    queue: FairQueue[str] = FairQueue({"heavy": 2.0})
    for index in range(10):
        queue.push("heavy", f"h{index}")
    for index in range(3):
        queue.push("light", f"l{index}")
    predicted = queue.ahead_of_new("light")
    queue.push("light", "new")
    order = _drain(queue)
    assert abs(order.index("new") - predicted) <= 1
    assert queue.ahead_of_new("anyone") == 0


def test_remove_and_pop_newest() -> None:
    queue: FairQueue[str] = FairQueue()
    for index in range(4):
        queue.push("a", f"a{index}")
    queue.push("b", "b0")
    assert queue.remove("a", "a1")
    assert not queue.remove("a", "a1")
    assert not queue.remove("c", "x")
    assert queue.pop_newest() == "a3"  # the tenant using the most of its share gives way
    assert len(queue) == 3
    assert sorted(queue) == ["a0", "a2", "b0"]
    assert queue.remove("b", "b0")
    assert queue.waiting("b") == 0
    assert _drain(queue) == ["a0", "a2"]
    assert queue.pop_newest() is None


def test_within_share_is_by_weight_among_the_waiting() -> None:
    queue: FairQueue[str] = FairQueue({"gold": 3.0})
    assert not queue.within_share("a")  # nobody waits: nothing to share
    for index in range(4):
        queue.push("a", f"a{index}")
    assert not queue.within_share("a")  # alone it is the load, not a share of it
    assert queue.within_share("b")
    assert queue.within_share("gold")
    queue.push("gold", "g0")
    queue.push("gold", "g1")
    assert queue.within_share("gold")  # 2 of 6 waiting, a share of 3/4
    assert not queue.within_share("a")  # 4 of 6, a share of 1/4
