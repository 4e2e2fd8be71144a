"""A closed-loop gRPC load generator (its own process): ModelInfer on one model at a fixed concurrency.

    python -m benchmarks.grpc_load --port P --key K --model noop --concurrency 16 --duration 5 --cpu 1

Prints one JSON object: requests, errors, elapsed_s and the latencies' p50 and p99 in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

import grpc

from strata.gateway.grpc import inference_pb2 as pb
from strata.gateway.grpc import inference_pb2_grpc as pb_grpc


async def _run(port: int, key: str, model: str, concurrency: int, duration_s: float) -> dict[str, float]:
    tensor = pb.ModelInferRequest.InferInputTensor(
        name="inputs", datatype="BYTES", shape=[1], contents=pb.InferTensorContents(bytes_contents=[b"ping"])
    )
    request = pb.ModelInferRequest(model_name=model, inputs=[tensor])
    metadata = (("authorization", f"Bearer {key}"),)
    latencies: list[float] = []
    errors = 0
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        await stub.ModelInfer(request, metadata=metadata)  # connect before the clock starts
        started = time.perf_counter()
        stop_at = started + duration_s

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                sent = time.perf_counter()
                try:
                    await stub.ModelInfer(request, metadata=metadata)
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - sent)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()

    def percentile_ms(q: float) -> float:
        return 1000 * latencies[min(len(latencies) - 1, int(q / 100 * len(latencies)))] if latencies else 0.0

    return {
        "requests": len(latencies),
        "errors": errors,
        "elapsed_s": elapsed,
        "p50_ms": percentile_ms(50),
        "p99_ms": percentile_ms(99),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--model", default="noop")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--cpu", type=int, default=None)
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    result = asyncio.run(_run(args.port, args.key, args.model, args.concurrency, args.duration))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
