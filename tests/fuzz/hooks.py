"""Schemathesis hooks of the contract fuzz (loaded through schemathesis.toml).

A random upload is almost never a valid batch file, so on its own the fuzzer would never get past
``POST /v1/files`` to the batch it feeds. Half the uploads are replaced by a generated, valid JSON
Lines batch file (real and unknown models, both endpoints): the stateful chain upload -> create batch
-> read and cancel it then runs on real files and real batches. The other half stay random.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import schemathesis
from hypothesis import strategies as st
from schemathesis.generation.modes import GenerationMode

MODELS = ("strata-chat-tiny", "echo", "no-such-model")  # a chat model, a predict model, none at all


@st.composite
def batch_file(draw: st.DrawFn) -> bytes:
    url = draw(st.sampled_from(["/v1/chat/completions", "/v1/completions"]))
    lines = []
    for index in range(draw(st.integers(min_value=1, max_value=3))):
        text = draw(st.text(max_size=24))
        body: dict[str, Any] = {"model": draw(st.sampled_from(MODELS)), "max_tokens": draw(st.integers(1, 4))}
        if url == "/v1/chat/completions":
            body["messages"] = [{"role": "user", "content": text}]
        else:
            body["prompt"] = text
        lines.append(json.dumps({"custom_id": f"request-{index}", "method": "POST", "url": url, "body": body}))
    return "\n".join(lines).encode()


@schemathesis.hook.apply_to(name="POST /v1/files")
def flatmap_case(context: schemathesis.HookContext, case: schemathesis.Case) -> st.SearchStrategy[schemathesis.Case]:
    """Half the positive uploads carry a valid batch file; negative ones stay as generated (a valid file
    must never mask the mutation that makes them invalid)."""
    meta = case.meta
    if meta is None or meta.generation.mode != GenerationMode.POSITIVE or not isinstance(case.body, dict):
        return st.just(case)

    def upload(data: bytes) -> schemathesis.Case:
        # A case of its own (with its own metadata): the generated one is never changed.
        return case.operation.Case(
            path_parameters=case.path_parameters, headers=dict(case.headers), cookies=case.cookies,
            query=case.query, body={**case.body, "file": data}, media_type=case.media_type,
            multipart_content_types=case.multipart_content_types, _meta=copy.deepcopy(meta),
        )  # fmt: skip

    return st.one_of(st.just(case), batch_file().map(upload))
