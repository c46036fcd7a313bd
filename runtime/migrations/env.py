"""Alembic environment for the system tables; the connection is handed in by `runtime.migrate`."""
from alembic import context

from metacrm.runtime.systables import metadata

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table="mc_alembic_version",
    render_as_batch=connection.dialect.name == "sqlite",
    include_name=lambda name, type_, parent: type_ != "table" or name.startswith("mc_"),
)
with context.begin_transaction():
    context.run_migrations()
