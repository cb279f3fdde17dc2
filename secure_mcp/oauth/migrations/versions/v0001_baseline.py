"""Baseline: the tables as the release before migrations left them (issue-9 hardening included).

Revision ID: 0001
Revises:

An empty database gets every table. A database made before migrations existed (no
`alembic_version`) is recognised by its `clients` table and brought to the same state: the
per-browser-session tables of the first version dropped, `clients.authorized_at` added (set to
`issued_at`, so no earlier client is judged unused) with its index, and missing tables created.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None

LEGACY_TABLES = ("pending_requests", "consents")  # per-browser-session state, no longer kept
URL = 2048  # client_id (a CIMD URL), redirect URIs, resources


def _clients() -> tuple[sa.Column[object], ...]:
    return (
        sa.Column("client_id", sa.String(URL), primary_key=True),
        sa.Column("secret_hash", sa.String(64), nullable=True),
        sa.Column("token_endpoint_auth_method", sa.String(32), nullable=False),
        sa.Column("redirect_uris", sa.JSON(), nullable=False),
        sa.Column("grant_types", sa.JSON(), nullable=False),
        sa.Column("scope", sa.String(1024), nullable=True),
        sa.Column("client_name", sa.String(256), nullable=True),
        sa.Column("registered", sa.JSON(), nullable=False),
        sa.Column("issued_at", sa.Integer(), nullable=False),
        sa.Column("authorized_at", sa.Integer(), nullable=True),
    )


def _create_missing(tables: set[str]) -> None:
    """Create each baseline table the database lacks, with its indexes."""
    if "clients" not in tables:
        op.create_table("clients", *_clients())
    if "authorization_codes" not in tables:
        op.create_table(
            "authorization_codes",
            sa.Column("code_hash", sa.String(64), primary_key=True),
            sa.Column("client_id", sa.String(URL), nullable=False),
            sa.Column("redirect_uri", sa.String(URL), nullable=False),
            sa.Column("code_challenge", sa.String(128), nullable=False),
            sa.Column("resource", sa.String(URL), nullable=False),
            sa.Column("scope", sa.String(1024), nullable=False),
            sa.Column("subject", sa.String(256), nullable=False),
            sa.Column("family_id", sa.String(64), nullable=False),
            sa.Column("expires_at", sa.Integer(), nullable=False),
            sa.Column("used", sa.Boolean(), nullable=False),
        )
        op.create_index("ix_authorization_codes_expires_at", "authorization_codes", ["expires_at"])
    if "tokens" not in tables:
        op.create_table(
            "tokens",
            sa.Column("token_hash", sa.String(64), primary_key=True),
            sa.Column("kind", sa.String(16), nullable=False),
            sa.Column("family_id", sa.String(64), nullable=False),
            sa.Column("client_id", sa.String(URL), nullable=False),
            sa.Column("subject", sa.String(256), nullable=False),
            sa.Column("scope", sa.String(1024), nullable=False),
            sa.Column("resource", sa.String(URL), nullable=False),
            sa.Column("issued_at", sa.Integer(), nullable=False),
            sa.Column("expires_at", sa.Integer(), nullable=False),
            sa.Column("revoked", sa.Boolean(), nullable=False),
            sa.Column("rotated", sa.Boolean(), nullable=False),
        )
        op.create_index("ix_tokens_family_id", "tokens", ["family_id"])
        op.create_index("ix_tokens_expires_at", "tokens", ["expires_at"])
    if "user_consents" not in tables:
        op.create_table(
            "user_consents",
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column("subject", sa.String(256), nullable=False),
            sa.Column("client_id", sa.String(URL), nullable=False),
            sa.Column("scope", sa.String(1024), nullable=False),
            sa.Column("resource", sa.String(URL), nullable=False),
            sa.Column("expires_at", sa.Integer(), nullable=False),
            sa.UniqueConstraint("subject", "client_id", "scope", "resource"),
        )
        op.create_index("ix_user_consents_expires_at", "user_consents", ["expires_at"])
    if "resource_servers" not in tables:
        op.create_table(
            "resource_servers",
            sa.Column("client_id", sa.String(64), primary_key=True),
            sa.Column("resource", sa.String(URL), nullable=False, unique=True),
            sa.Column("secret_hash", sa.String(64), nullable=False),
        )
    if "pending_authorizations" not in tables:
        op.create_table(
            "pending_authorizations",
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column("tx_hash", sa.String(64), nullable=False, unique=True),
            sa.Column("cookie_name", sa.String(64), nullable=False),
            sa.Column("binding_hash", sa.String(64), nullable=False),
            sa.Column("request", sa.JSON(), nullable=False),
            sa.Column("subject", sa.String(256), nullable=True),
            sa.Column("expires_at", sa.Integer(), nullable=False),
        )
        op.create_index(
            "ix_pending_authorizations_cookie_name", "pending_authorizations", ["cookie_name"]
        )
        op.create_index(
            "ix_pending_authorizations_expires_at", "pending_authorizations", ["expires_at"]
        )


def _upgrade_clients(inspector: sa.Inspector) -> None:
    """`clients` of the first version: add `authorized_at` (= issued_at) and its index."""
    columns = {column["name"] for column in inspector.get_columns("clients")}
    if "authorized_at" not in columns:
        op.add_column("clients", sa.Column("authorized_at", sa.Integer(), nullable=True))
        op.execute("UPDATE clients SET authorized_at = issued_at")
    indexes = {index["name"] for index in inspector.get_indexes("clients")}
    if "ix_clients_authorized_at" not in indexes:
        op.create_index("ix_clients_authorized_at", "clients", ["authorized_at"])


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    tables = set(inspector.get_table_names())
    for legacy in LEGACY_TABLES:
        if legacy in tables:
            op.drop_table(legacy)
    if "clients" in tables:
        _upgrade_clients(inspector)
    else:
        _create_missing(set())
        op.create_index("ix_clients_authorized_at", "clients", ["authorized_at"])
        return
    _create_missing(tables)


def downgrade() -> None:
    raise NotImplementedError("migrations are forward-only: restore a backup to go back")
