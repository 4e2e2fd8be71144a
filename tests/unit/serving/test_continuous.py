"""The continuous batcher driving the shipped chat model (the same load path as a user's model)."""

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator

import pytest

from strata.errors import InvalidRequest, ModelFailed, Overloaded, ReplicaUnavailable
from strata.models.hf_causal_lm import HFCausalLM
from strata.models.paths import resolve_model_path
from strata.observability.metrics import Metrics
from strata.serving.continuous import ContinuousBatcher
from strata.serving.generation import Choice, Choices, GenerationRequest, JsonConstraint
from strata.serving.sampling import SamplingParams

QUESTIONS = [
    "What is the capital of France?",
    "What is 3 plus 4?",
    "Hello!",
    "What is Strata?",
    "What color is the sky?",
    "Tell me a joke.",
]


@pytest.fixture(scope="module")
def engine() -> HFCausalLM:
    return HFCausalLM(resolve_model_path("builtin:strata-chat-tiny"))


@pytest.fixture
async def batcher(engine: HFCausalLM) -> AsyncIterator[tuple[ContinuousBatcher, Metrics]]:
    metrics = Metrics()
    batcher = ContinuousBatcher(engine, max_running=4, max_queue=8, metrics=metrics.for_deployment("chat"))
    batcher.start()
    yield batcher, metrics
    await asyncio.to_thread(batcher.stop)


def _chat(question: str, **params: object) -> GenerationRequest:
    sampling = SamplingParams(**({"temperature": 0.0, "max_tokens": 40} | params))  # type: ignore[arg-type]
    return GenerationRequest(params=sampling, messages=({"role": "user", "content": question},))


async def _text(batcher: ContinuousBatcher, request: GenerationRequest) -> tuple[str, str | None, int]:
    parts, finish, tokens = [], None, 0
    async for event in batcher.submit(request).events():
        parts.append(event.text)
        finish, tokens = event.finish_reason, event.completion_tokens
    return "".join(parts), finish, tokens


async def test_batched_greedy_output_equals_one_at_a_time(batcher: tuple[ContinuousBatcher, Metrics]) -> None:
    scheduler, metrics = batcher
    alone = [await _text(scheduler, _chat(q)) for q in QUESTIONS]
    together = await asyncio.gather(*(_text(scheduler, _chat(q)) for q in QUESTIONS))  # 6 > 4 slots: some wait
    assert together == alone
    assert all(text for text, _, _ in alone)
    sizes = metrics.registry.get_sample_value("strata_batch_size_sum", {"deployment": "chat"})
    steps = metrics.registry.get_sample_value("strata_batch_size_count", {"deployment": "chat"})
    assert sizes is not None
    assert steps is not None
    assert sizes / steps > 1.0  # sequences really shared decode steps


async def test_closing_a_stream_frees_its_slot(engine: HFCausalLM) -> None:
    metrics = Metrics()
    scheduler = ContinuousBatcher(engine, max_running=1, max_queue=4, metrics=metrics.for_deployment("chat"))
    scheduler.start()
    try:
        stream = scheduler.submit(_chat("Tell me a joke.", max_tokens=400, ignore_eos=True))
        events = stream.events()
        await anext(events)
        await events.aclose()  # what the gateway does when the client disconnects
        _, finish, _ = await asyncio.wait_for(_text(scheduler, _chat("Hello!")), timeout=30)
        assert finish in {"stop", "length"}
        produced = metrics.registry.get_sample_value("strata_tokens_total", {"deployment": "chat", "direction": "out"})
        assert produced is not None
        assert produced < 200  # the abandoned sequence stopped long before its 400 tokens
        # A finished sequence's last event is sent inside its decode step, before the step's
        # retire phase removes it: give the scheduler thread that moment.
        for _ in range(500):  # polls a counter the scheduler thread owns: no event to await
            if not scheduler.running:
                break
            await asyncio.sleep(0.01)
        assert scheduler.running == 0
    finally:
        await asyncio.to_thread(scheduler.stop)


async def test_max_tokens_and_stop_strings(batcher: tuple[ContinuousBatcher, Metrics]) -> None:
    scheduler, _ = batcher
    _, finish, tokens = await _text(scheduler, _chat("Tell me a joke.", max_tokens=5, ignore_eos=True))
    assert (finish, tokens) == ("length", 5)
    full, _, _ = await _text(scheduler, _chat("What is Strata?"))
    stop = full.split()[2]
    cut, finish, _ = await _text(scheduler, _chat("What is Strata?", stop=(stop,)))
    assert finish == "stop"
    assert stop not in cut
    assert full.startswith(cut)


async def test_prompt_longer_than_the_context_is_a_400(batcher: tuple[ContinuousBatcher, Metrics]) -> None:
    scheduler, _ = batcher
    with pytest.raises(InvalidRequest) as caught:
        await _text(scheduler, _chat("word " * 2000))
    assert caught.value.param == "messages"
    with pytest.raises(InvalidRequest) as too_many:
        await _text(scheduler, _chat("Hi", max_tokens=100_000))
    assert too_many.value.param == "max_tokens"
    assert (await _text(scheduler, _chat("Hello!")))[1] in {"stop", "length"}  # still serving


async def test_seeded_sampling_does_not_depend_on_the_batch(
    batcher: tuple[ContinuousBatcher, Metrics],
) -> None:
    scheduler, _ = batcher
    request = _chat("Say something.", temperature=1.0, seed=11)
    alone = await _text(scheduler, request)
    crowd = await asyncio.gather(_text(scheduler, request), *(_text(scheduler, _chat(q)) for q in QUESTIONS[:3]))
    assert crowd[0] == alone


async def test_full_queue_sheds(engine: HFCausalLM) -> None:
    scheduler = ContinuousBatcher(engine, max_running=1, max_queue=1, metrics=Metrics().for_deployment("chat"))
    # Not started: nothing drains the queue, so the second submission finds it full.
    first = scheduler.submit(_chat("Hello!"))
    with pytest.raises(Overloaded):
        scheduler.submit(_chat("Hello again!"))
    first.close()


class _DyingEngine:
    """Wraps the real engine; its decode step kills the thread, as a crash in native code would."""

    def __init__(self, engine: HFCausalLM) -> None:
        self._engine = engine

    def __getattr__(self, name: str) -> object:
        return getattr(self._engine, name)

    def step(self, state: object, tokens: object) -> object:
        raise SystemExit("the decode thread dies")


async def test_a_dead_decode_thread_fails_its_streams_and_reports_not_alive(engine: HFCausalLM) -> None:
    scheduler = ContinuousBatcher(
        _DyingEngine(engine),  # type: ignore[arg-type]
        max_running=2,
        max_queue=4,
        metrics=Metrics().for_deployment("chat"),
    )
    assert scheduler.alive  # not started is not dead
    scheduler.start()
    outcomes = await asyncio.wait_for(
        asyncio.gather(*(_text(scheduler, _chat(q, max_tokens=20)) for q in QUESTIONS[:3]), return_exceptions=True),
        timeout=30,
    )
    assert all(isinstance(outcome, Exception) and "worker died" in str(outcome) for outcome in outcomes), outcomes
    await asyncio.sleep(0.1)
    assert not scheduler.alive
    with pytest.raises(ReplicaUnavailable):  # nobody would serve it: refused at once, never left hanging
        scheduler.submit(_chat("Hello!"))
    await asyncio.to_thread(scheduler.stop)


async def test_a_vanishing_temperature_or_top_p_is_greedy(batcher: tuple[ContinuousBatcher, Metrics]) -> None:
    # 5e-324 is 0.0 in float32: dividing the logits by it gave NaN probabilities and killed the thread.
    scheduler, _ = batcher
    greedy = await _text(scheduler, _chat("What is Strata?", temperature=0.0))
    for tiny in (5e-324, 1e-40, 1e-6):
        assert await asyncio.wait_for(_text(scheduler, _chat("What is Strata?", temperature=tiny)), 30) == greedy
        # A vanishing nucleus keeps its most likely token: sampling from it is greedy too.
        nucleus = _chat("What is Strata?", temperature=1.0, top_p=tiny)
        assert await asyncio.wait_for(_text(scheduler, nucleus), 30) == greedy
    assert scheduler.alive


class _UnsamplableEngine(_DyingEngine):
    """Its prefill gives logits no sampler can draw from (as a broken model's NaNs would)."""

    def prefill(self, prompt_ids: list[int]) -> tuple[object, object]:
        state, logits = self._engine.prefill(prompt_ids)
        return state, logits * float("nan")


async def test_a_failure_while_admitting_fails_only_that_request(engine: HFCausalLM) -> None:
    scheduler = ContinuousBatcher(
        _UnsamplableEngine(engine),  # type: ignore[arg-type]
        max_running=2,
        max_queue=4,
        metrics=Metrics().for_deployment("chat"),
    )
    scheduler.start()
    try:
        with pytest.raises(ModelFailed, match="prefill failed"):  # answered (a 500), not left hanging
            await asyncio.wait_for(_text(scheduler, _chat("Hello!", temperature=1.0)), timeout=30)
        assert scheduler.alive  # the decode thread survived it
    finally:
        await asyncio.to_thread(scheduler.stop)


async def _choices(batcher: ContinuousBatcher, request: GenerationRequest) -> list[Choice]:
    choices = Choices()
    async for event in batcher.submit(request).events():
        choices.add(event)
    return choices.ordered()


async def test_n_choices_fork_one_prefill(engine: HFCausalLM, batcher: tuple[ContinuousBatcher, Metrics]) -> None:
    scheduler, metrics = batcher
    alone = await _text(scheduler, _chat("Hello!"))
    labels = {"deployment": "chat", "direction": "in"}
    prompt_tokens_before = metrics.registry.get_sample_value("strata_tokens_total", labels)
    greedy = await _choices(scheduler, _chat("Hello!", n=3))
    assert [(c.index, c.text, c.finish_reason) for c in greedy] == [(i, alone[0], alone[1]) for i in range(3)]
    prompt_tokens = metrics.registry.get_sample_value("strata_tokens_total", labels)
    assert prompt_tokens is not None
    assert prompt_tokens_before is not None
    assert prompt_tokens - prompt_tokens_before == len(engine.encode_chat([{"role": "user", "content": "Hello!"}]))
    sampled = await _choices(scheduler, _chat("Tell me a joke.", n=3, temperature=1.5, seed=4))
    assert len({c.text for c in sampled}) > 1
    single = await _text(scheduler, _chat("Tell me a joke.", temperature=1.5, seed=4))
    assert sampled[0].text == single[0]
    with pytest.raises(InvalidRequest) as error:  # 5 choices cannot fit a batch of 4
        scheduler.submit(_chat("Hello!", n=5))
    assert error.value.param == "n"


async def test_logprobs_of_greedy_tokens_are_the_most_likely(batcher: tuple[ContinuousBatcher, Metrics]) -> None:
    scheduler, _ = batcher
    [choice] = await _choices(scheduler, _chat("What is Strata?", logprobs=2, max_tokens=12))
    assert len(choice.logprobs) == choice.completion_tokens - (choice.finish_reason == "stop")
    for entry in choice.logprobs:
        assert len(entry.top) == 2
        assert (entry.token, entry.logprob) == pytest.approx(entry.top[0])
        assert entry.top[0][1] >= entry.top[1][1]


def _json_chat(question: str, schema: dict[str, object], **params: object) -> GenerationRequest:
    request = _chat(question, **params)
    return dataclasses.replace(request, constraint=JsonConstraint(json.dumps(schema)))


async def test_constrained_rows_leave_the_others_unchanged(batcher: tuple[ContinuousBatcher, Metrics]) -> None:
    scheduler, _ = batcher
    schema = {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}},
        "required": ["ok"],
        "additionalProperties": False,
    }
    alone = [await _text(scheduler, _chat(q)) for q in QUESTIONS[:2]]
    mixed = await asyncio.gather(
        *(_text(scheduler, _chat(q)) for q in QUESTIONS[:2]),
        *(_text(scheduler, _json_chat(q, schema, temperature=1.0, seed=2)) for q in QUESTIONS[:2]),
    )
    assert list(mixed[:2]) == alone
    for text, finish, _ in mixed[2:]:
        assert finish == "stop"
        assert isinstance(json.loads(text)["ok"], bool)


async def test_an_unusable_schema_is_a_400_naming_the_field(batcher: tuple[ContinuousBatcher, Metrics]) -> None:
    scheduler, _ = batcher
    with pytest.raises(InvalidRequest) as error:
        await _text(scheduler, _json_chat("Hello!", {"type": 12}))
    assert error.value.param == "response_format"
    assert await _text(scheduler, _chat("Hello!"))  # the replica serves on
