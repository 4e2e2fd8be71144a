"""Durable workflows (layer 5): pipelines of steps run as jobs with leases, retries, compensation
and idempotency, on the metadata database; the OpenAI Batch API on top."""

from strata.workflows.engine import Worker
from strata.workflows.service import Workflows
from strata.workflows.steps import StepContext, StepError
from strata.workflows.store import JobStore

__all__ = ["JobStore", "StepContext", "StepError", "Worker", "Workflows"]
