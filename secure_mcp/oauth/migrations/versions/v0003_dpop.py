"""DPoP (RFC 9449): tokens and codes bound to a key, proofs remembered for their window.

Revision ID: 0003
Revises: 0002

Everything issued before has no key: it stays a bearer token (null `jkt`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.add_column("tokens", sa.Column("jkt", sa.String(64), nullable=True))
    op.add_column("authorization_codes", sa.Column("dpop_jkt", sa.String(64), nullable=True))
    op.create_table(
        "dpop_proofs",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.Integer(), nullable=False),
    )
    op.create_index("ix_dpop_proofs_expires_at", "dpop_proofs", ["expires_at"])


def downgrade() -> None:
    raise NotImplementedError("migrations are forward-only: restore a backup to go back")
