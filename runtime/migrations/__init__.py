"""Hand-written Alembic migrations for the system tables (`mc_*`). Run by `metacrm init`."""
