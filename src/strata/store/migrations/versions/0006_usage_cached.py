"""Usage rows count the requests answered from the response cache (not billed).

Revision ID: 0006_usage_cached
Revises: 0004_usage_requests
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_usage_cached"
down_revision: str | Sequence[str] | None = "0004_usage_requests"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Rows written before this revision were all answered by a model.
    with op.batch_alter_table("access_usage") as batch:
        batch.add_column(sa.Column("cached", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("access_usage") as batch:
        batch.drop_column("cached")
