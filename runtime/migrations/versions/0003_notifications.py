"""In-app notifications (the bell).

Revision ID: 0003_notifications
Revises: 0002
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa

revision = "0003_notifications"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "mc_notifications",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("mc_users.id", ondelete="CASCADE",
                                                       name="fk_mc_notifications_user_id_mc_users"), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("title", sa.JSON, nullable=False),
        sa.Column("body", sa.Text),
        sa.Column("entity", sa.String(63)),
        sa.Column("record_id", sa.Integer),
        sa.Column("link", sa.String(500)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("read_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_mc_notifications"),
    )
    op.create_index("ix_mc_notifications_user_read", "mc_notifications", ["user_id", "read_at"])


def downgrade() -> None:
    op.drop_index("ix_mc_notifications_user_read", "mc_notifications")
    op.drop_table("mc_notifications")
