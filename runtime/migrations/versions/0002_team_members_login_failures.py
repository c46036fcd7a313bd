"""Team members (shared records) and failed logins (for throttling).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "mc_team_members",
        sa.Column("entity", sa.String(63), nullable=False),
        sa.Column("record_id", sa.Integer, nullable=False),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("mc_users.id", ondelete="CASCADE",
                                                       name="fk_mc_team_members_user_id_mc_users"), nullable=False),
        sa.Column("access", sa.String(8), nullable=False),
        sa.Column("added_by", sa.Integer, sa.ForeignKey("mc_users.id", name="fk_mc_team_members_added_by_mc_users")),
        sa.Column("added_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("entity", "record_id", "user_id", name="pk_mc_team_members"),
    )
    op.create_index("ix_mc_team_members_user", "mc_team_members", ["user_id", "entity"])
    op.create_table(
        "mc_login_failures",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("username", sa.String(150), nullable=False),
        sa.Column("remote_addr", sa.String(64)),
        sa.Column("at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_mc_login_failures"),
    )
    op.create_index("ix_mc_login_failures_username_at", "mc_login_failures", ["username", "at"])


def downgrade() -> None:
    op.drop_table("mc_login_failures")
    op.drop_table("mc_team_members")
