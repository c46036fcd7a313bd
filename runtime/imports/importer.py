"""Running an import: rows in batches, each batch one transaction, every write through
the record service (`create_records` / `create_record` / `update_record`), so
validation, permissions, formulas, numbering, dedup keys and history apply exactly as
for a form.

A failed row must leave nothing half-written while the good rows of its batch are kept.
In mode `create` a batch goes to the record service's batch door, `create_records`,
which checks every row before it writes any and writes the good ones with one INSERT
each for records, history and keys: a refused row has written nothing, so its batch
stands as it is. The other modes decide row by row against what earlier rows of the
file wrote (a second identical row is skipped or updates the first), so they write
row by row: the batch is first run straight through (the fast pass); when any row
raised — its writes, if any, are suspect — the batch is rolled back and its good rows
are run again without the failed ones; only if something fails again is the batch run
a third time with a savepoint around every row. A database error in a `create_records`
batch (a value a concurrent writer took since the checks) sends that batch down the
same row-by-row path, which finds the row. Errors found while reading a cell
never reach the database and cost nothing. A dry run does all of it and rolls every
batch back, reporting per row what would have happened. (Rows of earlier batches of the
same file are not seen by a dry run's dedup check, since they were rolled back.)

Memory stays flat: rows are streamed from the file and only one batch is held.
"""
from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field as dc_field
from typing import Any, Callable, Iterable, Iterator
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from metacrm.metadata.model import Field

from ..catalog import Catalog, Runtime
from ..access import access_for
from ..errors import BadRequest, PermissionDenied, ServiceError
from ..principal import Principal
from ..records import create_record, create_records, update_record
from .cells import Resolver, row_payload
from .matching import MODES, decide, write_check

log = logging.getLogger(__name__)
DEFAULT_BATCH = 500


@dataclass(frozen=True)
class ImportOptions:
    mode: str = "create"
    dry_run: bool = False
    batch_size: int = DEFAULT_BATCH
    #: Check dedup rules (`on: import`); off only to measure what they cost.
    dedup: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise BadRequest(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}.",
                             {"mode": [f"Must be one of: {', '.join(MODES)}."]})
        if not 1 <= self.batch_size <= 10_000:
            raise BadRequest("batch_size must be between 1 and 10000.")


@dataclass(frozen=True)
class Outcome:
    """What happened to one row (one per field for a row with several errors)."""

    row: int
    action: str  # create | update | skip | error
    record_id: int | None = None
    field: str | None = None
    message: str | None = None


@dataclass
class Counts:
    done: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    failed: int = 0

    def add(self, outcomes: list[Outcome]) -> None:
        rows: dict[int, str] = {}
        for o in outcomes:
            rows[o.row] = "error" if o.action == "error" or rows.get(o.row) == "error" else o.action
        for action in rows.values():
            key = {"create": "created", "update": "updated", "skip": "skipped", "error": "failed"}[action]
            setattr(self, key, getattr(self, key) + 1)
        self.done += len(rows)


@dataclass
class _Pass:
    outcomes: list[Outcome] = dc_field(default_factory=list)
    raised: dict[int, list[Outcome]] = dc_field(default_factory=dict)  # row -> its error outcomes
    aborted: bool = False  # a database error: the transaction can't be trusted (PostgreSQL: is dead)


def _errors_of(row: int, exc: ServiceError) -> list[Outcome]:
    if exc.fields:
        return [Outcome(row, "error", field=None if name == "__all__" else name, message=msg)
                for name, msgs in exc.fields.items() for msg in msgs]
    return [Outcome(row, "error", message=exc.message)]


class _Batch:
    """One batch's rows with their prepared payloads, and how to apply them."""

    def __init__(self, catalog: Catalog, principal: Principal, entity: str, options: ImportOptions,
                 prepared: list[tuple[int, dict[str, Any] | None, list[Outcome]]]):
        self.catalog, self.principal, self.entity, self.options = catalog, principal, entity, options
        self.prepared = prepared
        self.dedup_on = write_check(catalog, entity, options.dedup)

    def apply(self, conn: sa.Connection, row: int, payload: dict[str, Any]) -> Outcome:
        decision = decide(conn, self.catalog, self.principal, self.entity, payload, self.options.mode,
                          self.options.dedup)
        if decision.action in ("skip", "error"):
            return Outcome(row, decision.action, decision.record_id, message=decision.message)
        values = {k: v for k, v in payload.items() if k != "id"}
        if decision.action == "create":
            record = create_record(conn, self.catalog, self.principal, self.entity, values, dedup_on=self.dedup_on)
            return Outcome(row, "create", record["id"])
        rt = self.catalog.get(self.entity)
        version = conn.execute(sa.select(rt.table.c.version).where(rt.table.c.id == decision.record_id)
                               ).scalar() if decision.record_id and 0 < decision.record_id < 2**31 else None
        if version is None:
            return Outcome(row, "error", field="id" if "id" in payload else None,
                           message=f"No {self.entity} with id {decision.record_id}.")
        update_record(conn, self.catalog, self.principal, self.entity, decision.record_id,
                      {**values, "version": version}, dedup_on=self.dedup_on)
        return Outcome(row, "update", decision.record_id)

    def run_together(self, conn: sa.Connection) -> _Pass:
        """Mode create: the rows that reach the database go to `create_records` at once.
        Its refused rows wrote nothing, so none is `raised` (no redo); a database error
        leaves the pass `aborted` for the row-by-row path."""
        by_row: dict[int, list[Outcome]] = {}
        todo: list[tuple[int, dict[str, Any]]] = []
        for row, payload, cell_errors in self.prepared:
            if payload is None:
                by_row[row] = cell_errors
                continue
            decision = decide(conn, self.catalog, self.principal, self.entity, payload, self.options.mode,
                              self.options.dedup)
            if decision.action != "create":
                by_row[row] = [Outcome(row, decision.action, decision.record_id, message=decision.message)]
            else:
                todo.append((row, {k: v for k, v in payload.items() if k != "id"}))
        try:
            created = create_records(conn, self.catalog, self.principal, self.entity, [p for _, p in todo],
                                     dedup_on=self.dedup_on) if todo else []
        except sa.exc.DBAPIError as exc:
            log.info("import batch refused by the database, redone row by row: %s", exc)
            return _Pass(aborted=True)
        except ServiceError as exc:  # the whole batch refused (no create right)
            created = []
            for row, _ in todo:
                by_row[row] = _errors_of(row, exc)
        for (row, _), c in zip(todo, created):
            by_row[row] = _errors_of(row, c.error) if c.error is not None else [Outcome(row, "create", c.record_id)]
        return _Pass(outcomes=[o for row, _, _ in self.prepared for o in by_row[row]])

    def run(self, conn: sa.Connection, savepoints: bool, skip: dict[int, list[Outcome]] | None = None) -> _Pass:
        result = _Pass()
        for row, payload, cell_errors in self.prepared:
            if payload is None:
                result.outcomes += cell_errors
                continue
            if skip and row in skip:
                result.outcomes += skip[row]
                continue
            try:
                if savepoints:
                    with conn.begin_nested():
                        outcome = self.apply(conn, row, payload)
                else:
                    outcome = self.apply(conn, row, payload)
                result.outcomes.append(outcome)
            except ServiceError as exc:
                errors = _errors_of(row, exc)
                result.outcomes += errors
                result.raised[row] = errors
            except sa.exc.DBAPIError as exc:
                if not savepoints:
                    result.aborted = True
                    return result
                log.warning("import row %s refused by the database: %s", row, exc)
                errors = [Outcome(row, "error", message="The database refused this row: "
                                  + str(exc.orig).splitlines()[0][:300])]
                result.outcomes += errors
                result.raised[row] = errors
        return result


def _chunks(rows: Iterator[tuple[int, list[Any]]], size: int) -> Iterator[list[tuple[int, list[Any]]]]:
    while True:
        chunk = list(itertools.islice(rows, size))
        if not chunk:
            return
        yield chunk


def _row_by_row(conn: sa.Connection, batch: _Batch, tx: sa.RootTransaction) -> tuple[_Pass, sa.RootTransaction]:
    """A batch row by row: straight through; redone without the rows that raised; with a
    savepoint per row only when the redo raised again. Returns the pass that stands and
    the transaction it is in."""
    result = batch.run(conn, savepoints=False)
    if result.raised or result.aborted:
        tx.rollback()
        tx = conn.begin()
        again = batch.run(conn, savepoints=False, skip=result.raised) if not result.aborted else None
        if again is None or again.aborted or set(again.raised) - set(result.raised):
            tx.rollback()
            tx = conn.begin()
            again = batch.run(conn, savepoints=True)
        result = again
    return result, tx


def run_import(rt: Runtime, principal: Principal, entity: str, rows: Iterable[tuple[int, list[Any]]],
               columns: dict[int, Field], options: ImportOptions,
               on_batch: Callable[[sa.Connection, list[Outcome], Counts], None] | None = None) -> Counts:
    """Import `rows` ((row number, cells) pairs) into `entity` as `principal`.

    `on_batch(conn, outcomes, counts)` is called after each batch inside a transaction
    that commits: the batch's own for a real run (progress and data commit together), a
    fresh one after the rollback for a dry run."""
    counts = Counts()
    zone = ZoneInfo(rt.timezone)
    with rt.engine.connect() as conn:
        catalog = rt.catalog(conn)
        conn.rollback()
        entity_rt = catalog.get(entity)
        if not access_for(catalog.mset, principal, entity_rt.entity).allows("import"):
            raise PermissionDenied(f"You may not import {entity_rt.entity.label.get(principal.language)} records.")
        resolver = Resolver(catalog, principal, zone)
        for chunk in _chunks(iter(rows), options.batch_size):
            tx = conn.begin()
            try:
                resolver.prefetch(conn, columns, (cells for _, cells in chunk))
                prepared = []
                for number, cells in chunk:
                    payload, errors = row_payload(resolver, columns, cells)
                    if errors:
                        prepared.append((number, None, [Outcome(number, "error", field=f, message=m)
                                                         for f, m in errors.items()]))
                    else:
                        prepared.append((number, payload, []))
                batch = _Batch(catalog, principal, entity, options, prepared)
                result = batch.run_together(conn) if options.mode == "create" else None
                if result is None or result.aborted:
                    if result is not None:
                        tx.rollback()
                        tx = conn.begin()
                    result, tx = _row_by_row(conn, batch, tx)
                if options.dry_run:
                    tx.rollback()
                    tx = conn.begin()
                counts.add(result.outcomes)
                if on_batch is not None:
                    on_batch(conn, result.outcomes, counts)
                tx.commit()
            except BaseException:
                if tx.is_active:
                    tx.rollback()
                raise
    return counts
