"""Public pool (公海): the move log and the recycling reminders sent.

Revision ID: 0004_pool
Revises: 0003_notifications
Create Date: 2026-11-24
"""
from alembic import op
import sqlalchemy as sa

revision = "0004_pool"
down_revision = "0003_notifications"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "mc_pool_moves",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("by", sa.Integer, sa.ForeignKey("mc_users.id", name="fk_mc_pool_moves_by_mc_users")),
        sa.Column("entity", sa.String(63), nullable=False),
        sa.Column("record_id", sa.Integer, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("pool", sa.String(63)),
        sa.Column("from_owner", sa.Integer, sa.ForeignKey("mc_users.id", name="fk_mc_pool_moves_from_owner_mc_users")),
        sa.Column("to_owner", sa.Integer, sa.ForeignKey("mc_users.id", name="fk_mc_pool_moves_to_owner_mc_users")),
        sa.Column("rule", sa.String(63)),
        sa.Column("reason", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_mc_pool_moves"),
    )
    op.create_index("ix_mc_pool_moves_record", "mc_pool_moves", ["entity", "record_id", "id"])
    op.create_index("ix_mc_pool_moves_claims", "mc_pool_moves", ["to_owner", "action", "at"])
    op.create_table(
        "mc_pool_reminders",
        sa.Column("entity", sa.String(63), nullable=False),
        sa.Column("record_id", sa.Integer, nullable=False),
        sa.Column("cycle", sa.String(200), nullable=False),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("mc_users.id", ondelete="CASCADE",
                                                       name="fk_mc_pool_reminders_user_id_mc_users")),
        sa.Column("sent_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("entity", "record_id", "cycle", name="pk_mc_pool_reminders"),
    )


def downgrade() -> None:
    op.drop_table("mc_pool_reminders")
    op.drop_index("ix_mc_pool_moves_claims", "mc_pool_moves")
    op.drop_index("ix_mc_pool_moves_record", "mc_pool_moves")
    op.drop_table("mc_pool_moves")
