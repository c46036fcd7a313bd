"""Workflow and approval engine: approvals, their tasks and trail, delegations.

Revision ID: 0004_workflow
Revises: 0003_notifications
Create Date: 2026-11-24
"""
from alembic import op
import sqlalchemy as sa

revision = "0004_workflow"
down_revision = "0003_notifications"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _fk(table: str, column: str, target: str = "mc_users", ondelete: str | None = None) -> sa.ForeignKey:
    return sa.ForeignKey(f"{target}.id", ondelete=ondelete, name=f"fk_{table}_{column}_{target}")


def upgrade() -> None:
    op.create_table(
        "mc_approvals",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("entity", sa.String(63), nullable=False),
        sa.Column("record_id", sa.Integer, nullable=False),
        sa.Column("workflow", sa.String(63), nullable=False),
        sa.Column("chain", sa.String(63), nullable=False),
        sa.Column("transition", sa.String(63), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("from_state", sa.String(63)),
        sa.Column("step", sa.String(63)),
        sa.Column("title", sa.String(500)),
        sa.Column("submitter", sa.Integer, _fk("mc_approvals", "submitter"), nullable=False),
        sa.Column("submitted_at", TS, nullable=False),
        sa.Column("finished_at", TS),
        sa.Column("choices", sa.JSON),
        sa.Column("snapshot", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.PrimaryKeyConstraint("id", name="pk_mc_approvals"),
    )
    op.create_index("ix_mc_approvals_record", "mc_approvals", ["entity", "record_id", "status"])
    op.create_index("ix_mc_approvals_submitter", "mc_approvals", ["submitter", "status"])
    op.create_table(
        "mc_approval_tasks",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("approval_id", sa.Integer, _fk("mc_approval_tasks", "approval_id", "mc_approvals", "CASCADE"),
                  nullable=False),
        sa.Column("step", sa.String(63), nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False, server_default="0"),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("user_id", sa.Integer, _fk("mc_approval_tasks", "user_id"), nullable=False),
        sa.Column("on_behalf_of", sa.Integer, _fk("mc_approval_tasks", "on_behalf_of")),
        sa.Column("parent_id", sa.Integer),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("decided_at", TS),
        sa.Column("comment", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_mc_approval_tasks"),
    )
    op.create_index("ix_mc_approval_tasks_approval_id", "mc_approval_tasks", ["approval_id"])
    op.create_index("ix_mc_approval_tasks_user_status", "mc_approval_tasks", ["user_id", "status"])
    op.create_table(
        "mc_approval_events",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("approval_id", sa.Integer, _fk("mc_approval_events", "approval_id", "mc_approvals", "CASCADE"),
                  nullable=False),
        sa.Column("entity", sa.String(63), nullable=False),
        sa.Column("record_id", sa.Integer, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("by", sa.Integer, _fk("mc_approval_events", "by")),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("step", sa.String(63)),
        sa.Column("comment", sa.Text),
        sa.Column("detail", sa.JSON),
        sa.PrimaryKeyConstraint("id", name="pk_mc_approval_events"),
    )
    op.create_index("ix_mc_approval_events_record", "mc_approval_events", ["entity", "record_id", "id"])
    op.create_table(
        "mc_delegations",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("from_user", sa.Integer, _fk("mc_delegations", "from_user", ondelete="CASCADE"), nullable=False),
        sa.Column("to_user", sa.Integer, _fk("mc_delegations", "to_user", ondelete="CASCADE"), nullable=False),
        sa.Column("starts_on", sa.Date, nullable=False),
        sa.Column("ends_on", sa.Date, nullable=False),
        sa.Column("reason", sa.String(500)),
        sa.Column("created_by", sa.Integer, _fk("mc_delegations", "created_by")),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_mc_delegations"),
    )
    op.create_index("ix_mc_delegations_from", "mc_delegations", ["from_user", "ends_on"])


def downgrade() -> None:
    op.drop_table("mc_delegations")
    op.drop_table("mc_approval_events")
    op.drop_table("mc_approval_tasks")
    op.drop_table("mc_approvals")
