"""The sign-in generation of each user (`auth_epoch`): a password change or a deactivation
raises it, and a session or remember-me cookie minted under an older one stops working.

Revision ID: 0005_admin
Revises: 0004_workflow
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa

revision = "0005_admin"
down_revision = "0004_workflow"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("mc_users", sa.Column("auth_epoch", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("mc_users") as batch:
        batch.drop_column("auth_epoch")
