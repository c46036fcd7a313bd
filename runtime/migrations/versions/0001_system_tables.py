"""System tables: org, users, tokens, metadata layers and versions, history, sequences, audit.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
HEAD_FK = "fk_mc_departments_head_id_mc_users"


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    op.create_table(
        "mc_departments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("mc_departments.id", name="fk_mc_departments_parent_id_mc_departments")),
        sa.Column("head_id", sa.Integer),
        sa.Column("position", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_mc_departments"),
        # Departments and users point at each other. SQLite accepts a foreign key to a
        # table created later (and can't ALTER one in); PostgreSQL gets it added below.
        *([sa.ForeignKeyConstraint(["head_id"], ["mc_users.id"], name=HEAD_FK)] if _sqlite() else []),
    )
    op.create_index("ix_mc_departments_parent_id", "mc_departments", ["parent_id"])
    op.create_table(
        "mc_users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("username", sa.String(150), nullable=False),
        sa.Column("password_hash", sa.String(500), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(254)),
        sa.Column("language", sa.String(8), nullable=False, server_default="en"),
        sa.Column("is_admin", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("department_id", sa.Integer, sa.ForeignKey("mc_departments.id", name="fk_mc_users_department_id_mc_departments")),
        sa.Column("manager_id", sa.Integer, sa.ForeignKey("mc_users.id", name="fk_mc_users_manager_id_mc_users")),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_login_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_mc_users"),
        sa.UniqueConstraint("username", name="uq_mc_users_username"),
    )
    op.create_index("ix_mc_users_department_id", "mc_users", ["department_id"])
    op.create_index("ix_mc_users_manager_id", "mc_users", ["manager_id"])
    if not _sqlite():
        op.create_foreign_key(HEAD_FK, "mc_departments", "mc_users", ["head_id"], ["id"])
    op.create_table(
        "mc_user_roles",
        sa.Column("user_id", sa.Integer, sa.ForeignKey("mc_users.id", ondelete="CASCADE", name="fk_mc_user_roles_user_id_mc_users"), nullable=False),
        sa.Column("role", sa.String(63), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "role", name="pk_mc_user_roles"),
    )
    op.create_table(
        "mc_api_tokens",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("mc_users.id", ondelete="CASCADE", name="fk_mc_api_tokens_user_id_mc_users"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(12), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_used_at", TS),
        sa.Column("revoked_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_mc_api_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_mc_api_tokens_token_hash"),
    )
    op.create_index("ix_mc_api_tokens_user_id", "mc_api_tokens", ["user_id"])
    op.create_table(
        "mc_layers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("version", sa.String(50)),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("manifest", sa.JSON),
        sa.Column("documents", sa.JSON, nullable=False),
        sa.Column("installed_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_mc_layers"),
        sa.UniqueConstraint("name", name="uq_mc_layers_name"),
    )
    op.create_table(
        "mc_meta_versions",
        sa.Column("version", sa.Integer, autoincrement=False),
        sa.Column("published_at", TS, nullable=False),
        sa.Column("published_by", sa.Integer, sa.ForeignKey("mc_users.id", name="fk_mc_meta_versions_published_by_mc_users")),
        sa.Column("documents", sa.JSON, nullable=False),
        sa.Column("plan", sa.JSON, nullable=False),
        sa.Column("note", sa.Text),
        sa.PrimaryKeyConstraint("version", name="pk_mc_meta_versions"),
    )
    op.create_table(
        "mc_history",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("entity", sa.String(63), nullable=False),
        sa.Column("record_id", sa.Integer, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("by", sa.Integer, sa.ForeignKey("mc_users.id", name="fk_mc_history_by_mc_users")),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("field", sa.String(63)),
        sa.Column("old", sa.JSON),
        sa.Column("new", sa.JSON),
        sa.PrimaryKeyConstraint("id", name="pk_mc_history"),
    )
    op.create_index("ix_mc_history_entity_record", "mc_history", ["entity", "record_id", "id"])
    op.create_table(
        "mc_sequences",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_mc_sequences"),
    )
    op.create_table(
        "mc_audit_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("by", sa.Integer, sa.ForeignKey("mc_users.id", name="fk_mc_audit_log_by_mc_users")),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(200)),
        sa.Column("detail", sa.JSON),
        sa.PrimaryKeyConstraint("id", name="pk_mc_audit_log"),
    )


def downgrade() -> None:
    for table in ("mc_audit_log", "mc_sequences", "mc_history", "mc_meta_versions", "mc_layers",
                  "mc_api_tokens", "mc_user_roles"):
        op.drop_table(table)
    if not _sqlite():
        op.drop_constraint(HEAD_FK, "mc_departments", type_="foreignkey")
    op.drop_table("mc_users")
    op.drop_table("mc_departments")
