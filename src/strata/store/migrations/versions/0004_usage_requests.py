"""Usage rows aggregate: each row counts the requests of one tenant, key, model and minute.

Revision ID: 0004_usage_requests
Revises: 0002_access
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_usage_requests"
down_revision: str | Sequence[str] | None = "0002_access"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Rows written before this revision each stood for one request.
    with op.batch_alter_table("access_usage") as batch:
        batch.add_column(sa.Column("requests", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("access_usage") as batch:
        batch.drop_column("requests")
