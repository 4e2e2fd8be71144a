"""Protected data: stored exchanges kept by tenants' data policies, their content sealed with AES-GCM.

Revision ID: 0006_protected_data
Revises: 0001_base
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_protected_data"
down_revision: str | Sequence[str] | None = "0001_base"
branch_labels: str | Sequence[str] | None = ("protected_data",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "protected_exchanges",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("actor", sa.String(128), nullable=True),
        sa.Column("action", sa.String(256), nullable=False),
        sa.Column("model", sa.String(256), nullable=True),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("request_sha256", sa.String(64), nullable=True),
        sa.Column("response_sha256", sa.String(64), nullable=True),
        sa.Column("tokens_in", sa.Integer(), nullable=False),
        sa.Column("tokens_out", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=True),
        sa.Column("sealed", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_protected_exchanges"),
    )
    op.create_index("ix_protected_exchanges_at", "protected_exchanges", ["at"])
    op.create_index("ix_protected_exchanges_tenant", "protected_exchanges", ["tenant"])
    op.create_index("ix_protected_exchanges_key_id", "protected_exchanges", ["key_id"])


def downgrade() -> None:
    op.drop_index("ix_protected_exchanges_key_id", table_name="protected_exchanges")
    op.drop_index("ix_protected_exchanges_tenant", table_name="protected_exchanges")
    op.drop_index("ix_protected_exchanges_at", table_name="protected_exchanges")
    op.drop_table("protected_exchanges")
