"""Office module: who has read which announcement, which schedule reminders went out,
and a phone number on users for the address book.

Revision ID: 0005_office
Revises: 0004_workflow
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa

revision = "0005_office"
down_revision = "0004_workflow"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("mc_users", sa.Column("phone", sa.String(50)))
    op.create_table(
        "mc_announcement_reads",
        sa.Column("announcement_id", sa.Integer, nullable=False),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("mc_users.id", ondelete="CASCADE",
                                                       name="fk_mc_announcement_reads_user_id_mc_users"),
                  nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("announcement_id", "user_id", name="pk_mc_announcement_reads"),
    )
    op.create_index("ix_mc_announcement_reads_user_id", "mc_announcement_reads", ["user_id"])
    op.create_table(
        "mc_schedule_reminders",
        sa.Column("schedule_id", sa.Integer, nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("schedule_id", "starts_at", name="pk_mc_schedule_reminders"),
    )


def downgrade() -> None:
    op.drop_table("mc_schedule_reminders")
    op.drop_index("ix_mc_announcement_reads_user_id", "mc_announcement_reads")
    op.drop_table("mc_announcement_reads")
    with op.batch_alter_table("mc_users") as batch:
        batch.drop_column("phone")
