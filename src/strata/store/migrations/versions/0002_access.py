"""Access layer: API keys, key-change counter, usage, audit chain.

Revision ID: 0002_access
Revises: 0001_base
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_access"
down_revision: str | Sequence[str] | None = "0001_base"
branch_labels: str | Sequence[str] | None = ("access",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "access_api_keys",
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("models", sa.JSON(), nullable=True),
        sa.Column("name", sa.String(128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key_id", name="pk_access_api_keys"),
    )
    op.create_index("ix_access_api_keys_key_hash", "access_api_keys", ["key_hash"], unique=True)
    op.create_index("ix_access_api_keys_tenant", "access_api_keys", ["tenant"])
    op.create_table(
        "access_keys_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_access_keys_version"),
    )
    op.execute("INSERT INTO access_keys_version (id, version) VALUES (1, 0)")
    op.create_table(
        "access_usage",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("key_id", sa.String(128), nullable=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("tokens_in", sa.Integer(), nullable=False),
        sa.Column("tokens_out", sa.Integer(), nullable=False),
        sa.Column("compute_s", sa.Float(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_access_usage"),
    )
    op.create_index("ix_access_usage_at", "access_usage", ["at"])
    op.create_index("ix_access_usage_tenant", "access_usage", ["tenant"])
    op.create_table(
        "access_audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_access_audit_head"),
    )
    op.execute(f"INSERT INTO access_audit_head (id, seq, hash) VALUES (1, 0, '{'0' * 64}')")
    op.create_table(
        "access_audit",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=True),
        sa.Column("actor", sa.String(128), nullable=True),
        sa.Column("action", sa.String(256), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_access_audit"),
    )


def downgrade() -> None:
    for table in ("access_audit", "access_audit_head", "access_usage", "access_keys_version", "access_api_keys"):
        op.drop_table(table)
