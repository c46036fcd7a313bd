"""Dedup engine: stored match keys (mc_dedup_keys) and the key specs built (mc_dedup_specs).

Revision ID: 0004_dedup
Revises: 0003_notifications
Create Date: 2026-11-24
"""
from alembic import op
import sqlalchemy as sa

revision = "0004_dedup"
down_revision = "0003_notifications"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mc_dedup_keys",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("entity", sa.String(63), nullable=False),
        sa.Column("record_id", sa.Integer, nullable=False),
        sa.Column("field", sa.String(63), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("key", sa.String(190), nullable=False),
        sa.Column("norm", sa.String(500), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_mc_dedup_keys"),
    )
    op.create_index("ix_mc_dedup_keys_lookup", "mc_dedup_keys", ["entity", "field", "method", "key"])
    op.create_index("ix_mc_dedup_keys_record", "mc_dedup_keys", ["entity", "record_id"])
    op.create_table(
        "mc_dedup_specs",
        sa.Column("entity", sa.String(63), nullable=False),
        sa.Column("field", sa.String(63), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("entity", "field", "method", name="pk_mc_dedup_specs"),
    )


def downgrade() -> None:
    op.drop_table("mc_dedup_specs")
    op.drop_index("ix_mc_dedup_keys_record", "mc_dedup_keys")
    op.drop_index("ix_mc_dedup_keys_lookup", "mc_dedup_keys")
    op.drop_table("mc_dedup_keys")
