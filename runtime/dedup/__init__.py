"""The dedup engine (查重): normalised keys, rules, checks, scans and merges.

`find_matches(conn, catalog, principal, entity, values, *, on, exclude_id=None)` is the
public entry point (imports build on it); `Match` is what it returns.
"""
from .engine import DuplicateFound, Match, after_write, find_matches  # noqa: F401
from .keys import forget_keys, sync_specs  # noqa: F401
