"""Registers the workflow routes on the gateway (all under the ``jobs`` scope)."""

from __future__ import annotations

from fastapi import FastAPI

from strata.workflows.api import JobsAPI
from strata.workflows.batch_api import BatchAPI
from strata.workflows.service import Workflows


def add_workflow_routes(app: FastAPI, workflows: Workflows) -> None:
    jobs, batches = JobsAPI(workflows), BatchAPI(workflows)
    for path, endpoint, methods in [
        ("/v1/pipelines", jobs.list_pipelines, ["GET"]),
        ("/v1/pipelines/{name}/run", jobs.run_pipeline, ["POST"]),
        ("/v1/jobs", jobs.submit, ["POST"]),
        ("/v1/jobs", jobs.list_jobs, ["GET"]),
        ("/v1/jobs/{job_id}", jobs.get, ["GET"]),
        ("/v1/jobs/{job_id}/events", jobs.events, ["GET"]),
        ("/v1/jobs/{job_id}/cancel", jobs.cancel, ["POST"]),
        ("/v1/jobs/{job_id}/result", jobs.result, ["GET"]),
        ("/v1/jobs/{job_id}/artifacts", jobs.artifacts, ["GET"]),
        ("/v1/jobs/{job_id}/artifacts/{artifact_id}", jobs.artifact, ["GET"]),
        ("/v1/files", batches.upload_file, ["POST"]),
        ("/v1/files/{file_id}", batches.get_file, ["GET"]),
        ("/v1/files/{file_id}/content", batches.file_content, ["GET"]),
        ("/v1/batches", batches.create_batch, ["POST"]),
        ("/v1/batches", batches.list_batches, ["GET"]),
        ("/v1/batches/{batch_id}", batches.get_batch, ["GET"]),
        ("/v1/batches/{batch_id}/cancel", batches.cancel_batch, ["POST"]),
    ]:
        app.add_api_route(path, endpoint, methods=methods)
