"""The request-path benchmark's baseline: what a careful engineer would hand-write without Strata.

A plain Starlette app on uvicorn with uvloop + httptools - the same server stack as Strata's
gateway - exposing ``POST /v1/models/noop/predict`` (``{"inputs": [...]}`` in,
``{"model": "noop", "outputs": [...]}`` out) in front of the same
``strata.models.python_model:EchoModel``, through a small asyncio dynamic batcher configured like
the Strata spec the benchmark serves (max_batch_size 1, max_wait 0). The model is a no-op, so the
batcher calls it inline on the event loop. No authentication, limits, usage, audit or metrics:
this is the floor Strata's extra work is measured against.

Run it as its own process: ``python -m benchmarks.baseline_app --port 8001 [--cpu 0]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from strata.models.python_model import EchoModel

MODEL = "noop"
MAX_BATCH_SIZE = 1
MAX_WAIT_S = 0.0


class Model(Protocol):
    def predict_batch(self, inputs: Sequence[Any]) -> Sequence[Any]: ...


class Batcher:
    """Gathers queued items into batches of at most ``max_batch_size``, waiting at most ``max_wait_s``
    for a batch to fill, and runs the model once per batch."""

    def __init__(self, model: Model, *, max_batch_size: int = MAX_BATCH_SIZE, max_wait_s: float = MAX_WAIT_S) -> None:
        self.model = model
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.queue: asyncio.Queue[tuple[Any, asyncio.Future[Any]]] = asyncio.Queue()

    async def submit(self, item: Any) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((item, future))
        return await future

    async def _next_batch(self) -> list[tuple[Any, asyncio.Future[Any]]]:
        batch = [await self.queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        while len(batch) < self.max_batch_size:
            if not self.queue.empty():
                batch.append(self.queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self.queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def run(self) -> None:
        while True:
            batch = [(item, future) for item, future in await self._next_batch() if not future.done()]
            if not batch:
                continue
            try:
                outputs = list(self.model.predict_batch([item for item, _ in batch]))  # a no-op: inline
                if len(outputs) != len(batch):
                    raise RuntimeError(f"the model returned {len(outputs)} outputs for {len(batch)} inputs")
            except Exception as error:  # one bad batch fails its requests, not the batcher
                for _, future in batch:
                    future.set_exception(error)
                continue
            for (_, future), output in zip(batch, outputs, strict=True):
                future.set_result(output)


def _json(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload, separators=(",", ":")), status, media_type="application/json")


def _bad_request(message: str) -> Response:
    error = {"message": message, "type": "invalid_request_error", "param": "inputs", "code": "invalid_value"}
    return _json({"error": error}, 400)


def create_app(model: Model | None = None) -> Starlette:
    batcher = Batcher(model if model is not None else EchoModel())

    async def predict(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _bad_request("body: not valid JSON")
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or not inputs:
            return _bad_request("inputs: expected a non-empty array")
        if len(inputs) == 1:
            outputs = [await batcher.submit(inputs[0])]
        else:
            outputs = list(await asyncio.gather(*(batcher.submit(item) for item in inputs)))
        return _json({"model": MODEL, "outputs": outputs})

    async def healthz(request: Request) -> Response:
        return _json({"status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(batcher.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    routes = [Route(f"/v1/models/{MODEL}/predict", predict, methods=["POST"]), Route("/healthz", healthz)]
    return Starlette(routes=routes, lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to one core")
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    import uvicorn

    uvicorn.run(
        create_app(),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
