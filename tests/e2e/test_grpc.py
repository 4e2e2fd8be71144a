"""The Open Inference Protocol v2 over gRPC, with a grpcio client against a real `strata serve`."""

import secrets
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
import yaml

from strata.gateway.grpc import inference_pb2 as pb
from strata.gateway.grpc import inference_pb2_grpc as pb_grpc
from strata.testing import ServerProcess
from strata.testing.server import free_port

pytestmark = pytest.mark.e2e

ECHO = "strata.models.python_model:EchoModel"
SPEC = {
    "name": "grpc",
    "models": [
        {"name": "echo", "kind": "python", "entrypoint": ECHO},
        {"name": "slow-echo", "kind": "python", "entrypoint": ECHO, "options": {"sleep_ms": 300}},
    ],
    "deployments": [
        {"name": "echo", "model": "echo", "batching": {"max_batch_size": 8, "max_wait_ms": 2}},
        {"name": "slow", "model": "slow-echo", "max_queue": 1, "batching": {"max_batch_size": 1, "max_wait_ms": 0}},
    ],
    "routes": [{"name": "echo", "deployment": "echo"}, {"name": "slow-echo", "deployment": "slow"}],
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, int]]:
    port = free_port()
    path = Path(tmp_path_factory.mktemp("grpc")) / "app.yaml"
    path.write_text(yaml.safe_dump({**SPEC, "gateway": {"grpc_port": port}}))
    with ServerProcess(path) as server:
        yield server, port


@pytest.fixture(scope="module")
def stub(served: tuple[ServerProcess, int]) -> Iterator[pb_grpc.GRPCInferenceServiceStub]:
    with grpc.insecure_channel(f"127.0.0.1:{served[1]}") as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)


def _auth(server: ServerProcess) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {server.api_key}")]


def _texts(values: list[str]) -> pb.ModelInferRequest.InferInputTensor:
    contents = pb.InferTensorContents(bytes_contents=[v.encode() for v in values])
    return pb.ModelInferRequest.InferInputTensor(
        name="inputs", datatype="BYTES", shape=[len(values)], contents=contents
    )


def test_health_and_model_metadata(served: tuple[ServerProcess, int], stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    server, _ = served
    assert stub.ServerLive(pb.ServerLiveRequest()).live
    assert stub.ServerReady(pb.ServerReadyRequest()).ready
    assert stub.ModelReady(pb.ModelReadyRequest(name="echo"), metadata=_auth(server)).ready
    metadata = stub.ModelMetadata(pb.ModelMetadataRequest(name="echo"), metadata=_auth(server))
    assert metadata.name == "echo"
    assert metadata.platform == "strata:predict"


def test_model_infer_answers_as_rest_does(
    served: tuple[ServerProcess, int], stub: pb_grpc.GRPCInferenceServiceStub
) -> None:
    server, _ = served
    request = pb.ModelInferRequest(model_name="echo", id="r1", inputs=[_texts(["ping", "pong"])])
    reply = stub.ModelInfer(request, metadata=_auth(server))
    assert reply.id == "r1"
    [output] = reply.outputs
    assert (output.datatype, list(output.shape)) == ("BYTES", [2])
    assert [b.decode() for b in output.contents.bytes_contents] == ["ping", "pong"]
    rest = httpx.post(f"{server.url}/v1/models/echo/predict", json={"inputs": ["ping", "pong"]}, headers=server.headers)
    assert rest.json()["outputs"] == ["ping", "pong"]
    numbers = pb.ModelInferRequest.InferInputTensor(
        name="x", datatype="FP32", shape=[2, 2], contents=pb.InferTensorContents(fp32_contents=[1, 2, 3, 4])
    )
    reply = stub.ModelInfer(pb.ModelInferRequest(model_name="echo", inputs=[numbers]), metadata=_auth(server))
    assert (reply.outputs[0].datatype, list(reply.outputs[0].shape)) == ("FP64", [2, 2])
    assert list(reply.outputs[0].contents.fp64_contents) == [1.0, 2.0, 3.0, 4.0]


def test_a_callers_trace_continues_through_grpc(
    served: tuple[ServerProcess, int], stub: pb_grpc.GRPCInferenceServiceStub
) -> None:
    server, _ = served
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    metadata = [*_auth(server), ("traceparent", f"00-{trace_id}-{caller_span}-01")]
    stub.ModelInfer(pb.ModelInferRequest(model_name="echo", inputs=[_texts(["traced"])]), metadata=metadata)
    found = httpx.get(f"{server.url}/v1/admin/traces/{trace_id}", headers=server.headers)
    assert found.status_code == 200, found.text
    spans = {span["name"]: span for span in found.json()["spans"]}
    assert spans["POST /v1/models/{model:path}/predict"]["parent_span_id"] == caller_span
    assert {"batch", "inference"} <= set(spans)


def test_the_rest_request_path_counts_grpc_requests(
    served: tuple[ServerProcess, int], stub: pb_grpc.GRPCInferenceServiceStub
) -> None:
    server, _ = served
    route = 'route="/v1/models/{model:path}/predict",status="200"'

    def answered() -> float:
        lines = httpx.get(f"{server.url}/metrics", headers=server.headers).text.splitlines()
        return sum(
            float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("strata_requests") and route in line
        )

    before = answered()
    for _ in range(3):
        stub.ModelInfer(pb.ModelInferRequest(model_name="echo", inputs=[_texts(["x"])]), metadata=_auth(server))
    assert answered() - before == 3  # the same router, admission and request record as REST


@pytest.mark.parametrize(
    ("metadata", "model", "tensor", "code"),
    [
        ([], "echo", None, grpc.StatusCode.UNAUTHENTICATED),
        ([("authorization", "Bearer sk-wrong")], "echo", None, grpc.StatusCode.UNAUTHENTICATED),
        (None, "no-such-model", None, grpc.StatusCode.NOT_FOUND),
        (
            None, "echo", pb.ModelInferRequest.InferInputTensor(name="x", datatype="FP16"),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            None, "echo",
            pb.ModelInferRequest.InferInputTensor(
                name="x", datatype="INT64", shape=[3], contents=pb.InferTensorContents(int64_contents=[1])
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ],
)  # fmt: skip
def test_errors_carry_grpc_status_codes(
    served: tuple[ServerProcess, int],
    stub: pb_grpc.GRPCInferenceServiceStub,
    metadata: list[tuple[str, str]] | None,
    model: str,
    tensor: pb.ModelInferRequest.InferInputTensor | None,
    code: grpc.StatusCode,
) -> None:
    server, _ = served
    request = pb.ModelInferRequest(model_name=model, inputs=[tensor or _texts(["x"])])
    with pytest.raises(grpc.RpcError) as error:
        stub.ModelInfer(request, metadata=_auth(server) if metadata is None else metadata)
    assert error.value.code() == code, error.value.details()
    assert error.value.details()


def test_admission_sheds_grpc_requests_as_it_sheds_rest(
    served: tuple[ServerProcess, int], stub: pb_grpc.GRPCInferenceServiceStub
) -> None:
    server, _ = served
    request = pb.ModelInferRequest(model_name="slow-echo", inputs=[_texts(["x"])])
    calls = [stub.ModelInfer.future(request, metadata=_auth(server)) for _ in range(6)]
    codes = []
    for call in calls:
        try:
            call.result()
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as error:
            codes.append(error.code())
    assert grpc.StatusCode.OK in codes
    shed = [code for code in codes if code != grpc.StatusCode.OK]
    assert shed, codes  # one running and one queued at most: the rest are refused at once
    assert set(shed) <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED}, codes
