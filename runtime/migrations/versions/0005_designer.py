"""Designer drafts: the staged instance layer, one row per document the draft changes.

Revision ID: 0005_designer
Revises: 0004_workflow
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa

revision = "0005_designer"
down_revision = "0004_workflow"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mc_designer_drafts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("entity", sa.String(63), nullable=False, server_default=""),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("entries", sa.JSON, nullable=False),
        sa.Column("updated_by", sa.Integer,
                  sa.ForeignKey("mc_users.id", name="fk_mc_designer_drafts_updated_by_mc_users")),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_mc_designer_drafts"),
        sa.UniqueConstraint("kind", "entity", "name", name="uq_mc_designer_drafts_kind_entity_name"),
    )


def downgrade() -> None:
    op.drop_table("mc_designer_drafts")
