"""Workflows: jobs, steps, progress events, artifacts, files and batch results.

Revision ID: 0003_workflows
Revises: 0001_base
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_workflows"
down_revision: str | Sequence[str] | None = "0001_base"
branch_labels: str | Sequence[str] | None = ("workflows",)
depends_on: str | Sequence[str] | None = None


def _json() -> sa.JSON:
    return sa.JSON(none_as_null=True)


def upgrade() -> None:
    op.create_table(
        "workflow_jobs",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("key_id", sa.String(128), nullable=True),
        sa.Column("pipeline", sa.String(128), nullable=False),
        sa.Column("input", _json(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("result", _json(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("available_at", sa.Float(), nullable=False),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        sa.Column("lease_token", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_workflow_jobs"),
        sa.UniqueConstraint("tenant", "idempotency_key", name="uq_workflow_jobs_tenant_idempotency_key"),
    )
    op.create_index("ix_workflow_jobs_claim", "workflow_jobs", ["status", "available_at"])
    op.create_index("ix_workflow_jobs_tenant_created", "workflow_jobs", ["tenant", "created_at"])
    op.create_table(
        "workflow_steps",
        sa.Column("job_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("output", _json(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["workflow_jobs.id"], name="fk_workflow_steps_job_id_workflow_jobs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "name", name="pk_workflow_steps"),
    )
    op.create_table(
        "workflow_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(40), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("step", sa.String(64), nullable=True),
        sa.Column("detail", _json(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_workflow_events"),
    )
    op.create_index("ix_workflow_events_job", "workflow_events", ["job_id", "id"])
    op.create_table(
        "workflow_artifacts",
        sa.Column("job_id", sa.String(40), nullable=False),
        sa.Column("artifact_id", sa.String(64), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("step", sa.String(64), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("media_type", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "artifact_id", name="pk_workflow_artifacts"),
    )
    op.create_table(
        "workflow_files",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_workflow_files"),
    )
    op.create_index("ix_workflow_files_tenant", "workflow_files", ["tenant", "created_at"])
    op.create_table(
        "workflow_batch_results",
        sa.Column("job_id", sa.String(40), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("custom_id", sa.String(255), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("body", _json(), nullable=True),
        sa.PrimaryKeyConstraint("job_id", "line", name="pk_workflow_batch_results"),
    )


def downgrade() -> None:
    for table in (
        "workflow_batch_results",
        "workflow_files",
        "workflow_artifacts",
        "workflow_events",
        "workflow_steps",
        "workflow_jobs",
    ):
        op.drop_table(table)
