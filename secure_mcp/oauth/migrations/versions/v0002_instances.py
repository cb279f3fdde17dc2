"""Several instances on one database: token families as locks, shared secrets, rate limits.

Revision ID: 0002
Revises: 0001

Every family that already has tokens gets its row (expiring with its newest token), so refresh
tokens issued before the upgrade still rotate.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "token_families",
        sa.Column("family_id", sa.String(64), primary_key=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("expires_at", sa.Integer(), nullable=False),
    )
    op.create_index("ix_token_families_expires_at", "token_families", ["expires_at"])
    op.execute(
        "INSERT INTO token_families (family_id, revoked, expires_at) "
        "SELECT family_id, false, MAX(expires_at) FROM tokens GROUP BY family_id"
    )
    op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(2200), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
    )
    op.create_table(
        "rate_limits",
        sa.Column("bucket", sa.String(128), primary_key=True),
        sa.Column("tat", sa.Float(), nullable=False),
        sa.Column("allowed", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_rate_limits_tat", "rate_limits", ["tat"])


def downgrade() -> None:
    raise NotImplementedError("migrations are forward-only: restore a backup to go back")
