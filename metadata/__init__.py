"""metacrm.metadata — the metadata model: schemas, loading, validation, layering, expressions.

Pure Python: no Flask, no database.
"""
