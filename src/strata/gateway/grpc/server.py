"""The Open Inference Protocol v2 gRPC service, answered by the same gateway as REST.

Every RPC becomes one in-process call of the gateway's ASGI app, on the REST route that means the
same thing (ModelInfer is ``POST /v1/models/{model}/predict``). So a gRPC request has exactly the
REST request's credentials (metadata ``authorization``), access checks, limits, budgets, admission,
batching, request record, metrics, usage and audit: there is no second code path to keep in step.
Metadata ``x-strata-*`` (priority, session) passes through, and the RPC's gRPC deadline becomes the
request's deadline (``x-strata-deadline-ms``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grpc
import numpy as np
import orjson

from strata.gateway.asgi import Gateway
from strata.gateway.grpc import inference_pb2 as pb
from strata.gateway.grpc import inference_pb2_grpc as pb_grpc
from strata.gateway.grpc.inprocess import Reply, call_gateway, forwarded_headers

GrpcService = Callable[[grpc.aio.Server, Gateway], None]
"""Adds a service to the gRPC server, answered by the gateway (an extension's ``grpc_services``)."""

# Tensor contents field per OIP datatype (the request side); BYTES items are UTF-8 text to a model.
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents", "INT64": "int64_contents",
    "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}  # fmt: skip


class InferenceService(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    async def ServerLive(self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext) -> Any:
        reply = await self._call(context, "GET", "/healthz")
        return pb.ServerLiveResponse(live=reply.status == 200)

    async def ServerReady(self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext) -> Any:
        reply = await self._call(context, "GET", "/readyz", ok=(200, 503))
        return pb.ServerReadyResponse(ready=reply.status == 200)

    async def ModelReady(self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext) -> Any:
        card = (await self._call(context, "GET", f"/v1/models/{request.name}")).json()
        return pb.ModelReadyResponse(ready=bool(card["ready"]))

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext) -> Any:
        card = (await self._call(context, "GET", f"/v1/models/{request.name}")).json()
        any_tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=card["id"],
            platform=f"strata:{card['task']}",
            inputs=[any_tensor(name="inputs", datatype="BYTES", shape=[-1])],
            outputs=[any_tensor(name="outputs", datatype="BYTES", shape=[-1])],
        )

    async def ModelInfer(self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext) -> Any:
        if len(request.inputs) != 1:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "inputs: send exactly one input tensor")
        try:
            inputs = _tensor_values(request.inputs[0])
        except ValueError as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"inputs[0]: {error}")
        body = orjson.dumps({"inputs": inputs}, option=orjson.OPT_SERIALIZE_NUMPY)
        reply = await self._call(context, "POST", f"/v1/models/{request.model_name}/predict", body)
        output = _output_tensor(reply.json()["outputs"])
        return pb.ModelInferResponse(model_name=request.model_name, id=request.id, outputs=[output])

    async def _call(
        self, context: grpc.aio.ServicerContext, method: str, path: str, body: bytes = b"", ok: Sequence[int] = (200,)
    ) -> Reply:
        """One request through the gateway; a status outside ``ok`` aborts the RPC with its error."""
        reply = await call_gateway(self._gateway, forwarded_headers(context), context.peer(), method, path, body)
        if reply.status not in ok:
            await context.abort(reply.status_code, reply.error_message)
        return reply


def _tensor_values(tensor: pb.ModelInferRequest.InferInputTensor) -> list[Any]:
    """The tensor as the predict route's ``inputs``: one item per row of its first dimension."""
    field = CONTENTS_FIELD.get(tensor.datatype)
    if field is None:
        raise ValueError(f"datatype {tensor.datatype!r} is not supported (one of {sorted(CONTENTS_FIELD)})")
    flat: list[Any] = list(getattr(tensor.contents, field))
    if field == "bytes_contents":
        flat = [item.decode("utf-8", "replace") for item in flat]
    shape = list(tensor.shape) or [len(flat)]
    if int(np.prod(shape)) != len(flat):
        raise ValueError(f"shape {shape} needs {int(np.prod(shape))} values; contents has {len(flat)}")
    if len(shape) == 1:
        return flat
    values: list[Any] = np.array(flat, dtype=object).reshape(shape).tolist()
    return values


def _output_tensor(outputs: list[Any]) -> pb.ModelInferResponse.InferOutputTensor:
    """The predict route's ``outputs`` as one tensor: numbers and booleans typed, the rest as BYTES
    (text as UTF-8, anything else as its JSON)."""
    tensor = pb.ModelInferResponse.InferOutputTensor(name="outputs")
    array = np.asarray(outputs) if outputs else np.zeros(0)
    if array.dtype.kind in "biuf":
        tensor.shape.extend(array.shape)
        if array.dtype.kind == "b":
            tensor.datatype = "BOOL"
            tensor.contents.bool_contents.extend(array.ravel().tolist())
        elif array.dtype.kind in "iu":
            tensor.datatype = "INT64"
            tensor.contents.int64_contents.extend(array.ravel().tolist())
        else:
            tensor.datatype = "FP64"
            tensor.contents.fp64_contents.extend(array.ravel().tolist())
        return tensor
    tensor.datatype = "BYTES"
    tensor.shape.append(len(outputs))
    tensor.contents.bytes_contents.extend(
        item.encode() if isinstance(item, str) else orjson.dumps(item) for item in outputs
    )
    return tensor


async def start_grpc(
    gateway: Gateway, host: str, port: int, services: Sequence[GrpcService] = ()
) -> tuple[grpc.aio.Server, int]:
    """Serve the OIP v2 service, and the extensions' ``services``, on ``host:port`` (0: a free port);
    returns the server and its port."""
    server = grpc.aio.server()
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceService(gateway), server)  # type: ignore[no-untyped-call]
    for add in services:
        add(server, gateway)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    return server, bound
