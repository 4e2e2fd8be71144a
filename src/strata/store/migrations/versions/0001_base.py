"""Base revision every feature's migration branch starts from.

Each feature (access, workflows, ...) adds its own branch with ``down_revision = "0001_base"``,
so features developed apart never fight over one linear chain; Database.migrate applies all heads.

Revision ID: 0001_base
Revises:
"""

from collections.abc import Sequence

revision: str = "0001_base"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
