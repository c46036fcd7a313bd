"""Import jobs and their per-row outcomes (runtime/imports/).

Revision ID: 0004_imports
Revises: 0003_notifications
Create Date: 2026-11-24
"""
from alembic import op
import sqlalchemy as sa

revision = "0004_imports"
down_revision = "0003_notifications"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "mc_import_jobs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("entity", sa.String(63), nullable=False),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("mc_users.id", ondelete="CASCADE",
                                                       name="fk_mc_import_jobs_user_id_mc_users"), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.Column("mapping", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("total", sa.Integer),
        sa.Column("done", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created", sa.Integer, nullable=False, server_default="0"),
        sa.Column("updated", sa.Integer, nullable=False, server_default="0"),
        sa.Column("skipped", sa.Integer, nullable=False, server_default="0"),
        sa.Column("failed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("message", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS),
        sa.Column("heartbeat_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_mc_import_jobs"),
    )
    op.create_index("ix_mc_import_jobs_user_id", "mc_import_jobs", ["user_id"])
    op.create_table(
        "mc_import_rows",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("mc_import_jobs.id", ondelete="CASCADE",
                                                      name="fk_mc_import_rows_job_id_mc_import_jobs"), nullable=False),
        sa.Column("row", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(8), nullable=False),
        sa.Column("field", sa.String(63)),
        sa.Column("message", sa.Text),
        sa.Column("record_id", sa.Integer),
        sa.PrimaryKeyConstraint("id", name="pk_mc_import_rows"),
    )
    op.create_index("ix_mc_import_rows_job", "mc_import_rows", ["job_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_mc_import_rows_job", "mc_import_rows")
    op.drop_table("mc_import_rows")
    op.drop_index("ix_mc_import_jobs_user_id", "mc_import_jobs")
    op.drop_table("mc_import_jobs")
