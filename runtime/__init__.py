"""metacrm.runtime — the engine: system tables, schema compiler and publish, record service, queries."""
