"""The OpenAI Files and Batches routes (``client.files.create(purpose="batch")``, ``client.batches.*``,
``client.files.content``), tenant-scoped like jobs: another tenant's file or batch answers 404."""

from __future__ import annotations

import secrets
import time
from typing import Any, Literal

from pydantic import Field
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.responses import Response

from strata.errors import Conflict, InvalidRequest, NotFound
from strata.gateway.call import Call
from strata.gateway.paging import list_page, parse_query
from strata.gateway.responses import json_response
from strata.protocol.requests import RequestModel
from strata.protocol.vector_requests import FileListQuery
from strata.workflows.batches import BATCH_PIPELINE, parse_batch_file
from strata.workflows.events import Event
from strata.workflows.records import JobState, NewJob
from strata.workflows.service import Workflows
from strata.workflows.steps import StepError
from strata.workflows.tables import TERMINAL, File

# What a client may upload for: batch input, or files for vector stores (OpenAI's "assistants" and
# "user_data"). batch_output files are written by batches only.
UPLOAD_PURPOSES = ("batch", "assistants", "user_data")
WINDOW_S = 86_400


class CreateBatch(RequestModel):
    input_file_id: str = Field(min_length=1, max_length=64)
    endpoint: Literal["/v1/chat/completions", "/v1/completions"]
    completion_window: Literal["24h"]
    metadata: dict[str, str] | None = None


def file_json(file: File) -> dict[str, Any]:
    return {
        "id": file.id,
        "object": "file",
        "bytes": file.bytes,
        "created_at": int(file.created_at),
        "filename": file.filename,
        "purpose": file.purpose,
        "status": "processed",
        "status_details": None,
    }


def _batch_status(job: JobState) -> str:
    if job.cancel_requested and job.status not in TERMINAL:
        return "cancelling"
    if job.status == "queued":
        return "in_progress" if job.started_at is not None else "validating"
    if job.status == "running":
        return "in_progress"
    if job.status == "compensating":
        return "cancelling" if job.outcome == "cancelled" else "failed"
    return {"succeeded": "completed", "dead_letter": "failed", "cancelled": "cancelled"}[job.status]


def batch_json(job: JobState, counts: tuple[int, int]) -> dict[str, Any]:
    spec, result = job.input, job.result or {}
    status = _batch_status(job)
    finished = None if job.finished_at is None else int(job.finished_at)
    errors = None
    if status == "failed" and job.error:
        errors = {
            "object": "list",
            "data": [{"code": "batch_failed", "message": job.error, "param": None, "line": None}],
        }
    return {
        "id": job.id,
        "object": "batch",
        "endpoint": spec["endpoint"],
        "errors": errors,
        "input_file_id": spec["input_file_id"],
        "completion_window": spec["completion_window"],
        "status": status,
        "output_file_id": result.get("output_file_id"),
        "error_file_id": result.get("error_file_id"),
        "created_at": int(job.created_at),
        "in_progress_at": None if job.started_at is None else int(job.started_at),
        "expires_at": int(job.created_at) + WINDOW_S,
        "finalizing_at": None,
        "completed_at": finished if status == "completed" else None,
        "failed_at": finished if status == "failed" else None,
        "expired_at": None,
        "cancelling_at": None,
        "cancelled_at": finished if status == "cancelled" else None,
        "request_counts": {"total": spec["total"], "completed": counts[0], "failed": counts[1]},
        "metadata": spec.get("metadata"),
    }


class BatchAPI:
    def __init__(self, workflows: Workflows) -> None:
        self.workflows = workflows
        self.store = workflows.store
        self.files = workflows.files

    async def upload_file(self, call: Call) -> Response:
        try:
            form = await call.request().form(max_files=1, max_fields=8)
        except MultiPartException as error:  # no boundary, broken parts, too many fields or files
            raise InvalidRequest(
                f"The body is not a valid multipart/form-data upload: {error.message}", code="invalid_multipart"
            ) from None
        try:
            upload, purpose = form.get("file"), form.get("purpose")
            if purpose not in UPLOAD_PURPOSES:
                raise InvalidRequest(f"purpose must be one of {', '.join(UPLOAD_PURPOSES)}.", param="purpose")
            if not isinstance(upload, UploadFile):
                raise InvalidRequest("Send the file as the multipart field 'file'.", param="file")
            data = await upload.read()
            filename = (upload.filename or "upload.jsonl")[-255:]
        finally:
            await form.close()
        if purpose == "batch":
            try:
                parse_batch_file(data)
            except StepError as error:
                raise InvalidRequest(f"The file is not a valid batch input: {error.message}", param="file") from None
        tenant = call.caller.tenant
        stored = await self.workflows.artifacts.put(tenant, data)
        file = File(
            id=f"file-{secrets.token_hex(12)}", tenant=tenant, purpose=purpose, filename=filename,
            bytes=stored.bytes, sha256=stored.sha256, created_at=time.time(),
        )  # fmt: skip
        await self.files.add_file(file)
        uploaded = {"file_id": file.id, "purpose": file.purpose, "filename": file.filename, "bytes": file.bytes}
        await self.workflows.triggers.publish(Event("file.uploaded", tenant, uploaded))
        return json_response(file_json(file))

    async def _file(self, call: Call) -> File:
        file_id = call.params["file_id"]
        file = await self.files.file(call.caller.tenant, file_id)
        if file is None:
            raise NotFound(f"No such File object: {file_id}", param="file_id", code="file_not_found")
        return file

    async def get_file(self, call: Call) -> Response:
        return json_response(file_json(await self._file(call)))

    async def file_content(self, call: Call) -> Response:
        file = await self._file(call)
        data = await self.workflows.artifacts.get(file.tenant, file.sha256)
        batch = file.purpose in ("batch", "batch_output")
        return Response(data, media_type="application/jsonl" if batch else "application/octet-stream")

    async def list_files(self, call: Call) -> Response:
        query = parse_query(call, FileListQuery)
        files = await self.files.list_files(
            call.caller.tenant, purpose=query.purpose, limit=query.limit, order=query.order, after=query.after
        )
        return json_response(list_page([file_json(f) for f in files], query.limit))

    async def delete_file(self, call: Call) -> Response:
        file = await self._file(call)
        await self.files.delete_file(file.tenant, file.id)
        return json_response({"id": file.id, "object": "file", "deleted": True})

    async def create_batch(self, call: Call) -> Response:
        body = call.parse(CreateBatch)
        caller = call.caller
        self.workflows.budget_check(caller.tenant)
        file = await self.files.file(caller.tenant, body.input_file_id)
        if file is None or file.purpose != "batch":
            raise NotFound(f"No batch input file '{body.input_file_id}'.", param="input_file_id", code="file_not_found")
        lines = parse_batch_file(await self.workflows.artifacts.get(caller.tenant, file.sha256))
        wrong = next((n for n, line in enumerate(lines, start=1) if line.url != body.endpoint), None)
        if wrong is not None:
            raise InvalidRequest(f"Request {wrong} of the file is not for {body.endpoint}.", param="endpoint")
        # The key's model allow-list travels with the batch: a line naming another model fails as unknown.
        models = None if caller.models is None else sorted(caller.models)
        spec = {**body.model_dump(), "total": len(lines), "models": models}
        new = NewJob(caller.tenant, caller.key_id, BATCH_PIPELINE.name, spec, ["requests", "files"],
                     job_id=f"batch_{secrets.token_hex(12)}")  # fmt: skip
        job, _ = await self.store.submit(new)
        self.workflows.wake()
        return json_response(batch_json(job, (0, 0)))

    async def _batch(self, call: Call) -> JobState:
        batch_id = call.params["batch_id"]
        job = await self.store.get(call.caller.tenant, batch_id)
        if job is None or job.pipeline != BATCH_PIPELINE.name:
            raise NotFound(f"No batch '{batch_id}'.", param="batch_id", code="batch_not_found")
        return job

    async def get_batch(self, call: Call) -> Response:
        job = await self._batch(call)
        counts = await self.files.batch_counts([job.id])
        return json_response(batch_json(job, counts.get(job.id, (0, 0))))

    async def list_batches(self, call: Call) -> Response:
        jobs = await self.store.list_jobs(call.caller.tenant, limit=100, pipeline=BATCH_PIPELINE.name)
        counts = await self.files.batch_counts([j.id for j in jobs])
        data = [batch_json(j, counts.get(j.id, (0, 0))) for j in jobs]
        return json_response({"object": "list", "data": data, "has_more": False,
                              "first_id": data[0]["id"] if data else None,
                              "last_id": data[-1]["id"] if data else None})  # fmt: skip

    async def cancel_batch(self, call: Call) -> Response:
        job = await self._batch(call)
        if job.status in TERMINAL:
            raise Conflict(f"The batch '{job.id}' already finished ({_batch_status(job)}).", param="batch_id")
        updated = await self.store.request_cancel(job.tenant, job.id)
        assert updated is not None
        self.workflows.note_cancel(job.id)
        counts = await self.files.batch_counts([job.id])
        return json_response(batch_json(updated, counts.get(job.id, (0, 0))))
