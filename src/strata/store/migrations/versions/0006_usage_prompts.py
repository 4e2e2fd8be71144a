"""Usage per prompt template: each usage row also names the template (id@version) that built the
prompts of its requests, None for requests without one.

Revision ID: 0006_usage_prompts
Revises: 0004_usage_requests
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_usage_prompts"
down_revision: str | Sequence[str] | None = "0004_usage_requests"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("access_usage") as batch:
        batch.add_column(sa.Column("prompt", sa.String(80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("access_usage") as batch:
        batch.drop_column("prompt")
