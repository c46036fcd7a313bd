"""Uploaded files (mc_files): name, size, sniffed type and uploader of each stored file.

Revision ID: 0005_files
Revises: 0004_workflow
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa

revision = "0005_files"
down_revision = "0004_workflow"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mc_files",
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("content_type", sa.String(127), nullable=False),
        sa.Column("uploaded_by", sa.Integer, nullable=True),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("entity", sa.String(63), nullable=True),
        sa.Column("field", sa.String(63), nullable=True),
        sa.PrimaryKeyConstraint("token", name="pk_mc_files"),
        sa.ForeignKeyConstraint(["uploaded_by"], ["mc_users.id"], name="fk_mc_files_uploaded_by_mc_users",
                                ondelete="SET NULL"),
    )


def downgrade() -> None:
    op.drop_table("mc_files")
