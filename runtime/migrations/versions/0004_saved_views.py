"""Personal saved views on list pages.

Revision ID: 0004_saved_views
Revises: 0003_notifications
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa

revision = "0004_saved_views"
down_revision = "0003_notifications"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mc_saved_views",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("mc_users.id", ondelete="CASCADE",
                                                       name="fk_mc_saved_views_user_id_mc_users"), nullable=False),
        sa.Column("entity", sa.String(63), nullable=False),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("base_view", sa.String(63)),
        sa.Column("filters", sa.JSON, nullable=False),
        sa.Column("sort", sa.JSON, nullable=False),
        sa.Column("q", sa.String(200)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_mc_saved_views"),
    )
    op.create_index("ix_mc_saved_views_user_entity", "mc_saved_views", ["user_id", "entity"])


def downgrade() -> None:
    op.drop_index("ix_mc_saved_views_user_entity", "mc_saved_views")
    op.drop_table("mc_saved_views")
