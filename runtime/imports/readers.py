"""Reading an uploaded table: CSV in whatever encoding Chinese or Western Excel wrote it,
or XLSX streamed with openpyxl, as one header row and a lazy stream of numbered rows.

Rows are numbered as the spreadsheet shows them (the header is row 1), so a row number
in the error report is the one the user finds in Excel. Nothing here holds more than
one row and a small sample in memory.
"""
from __future__ import annotations

import codecs
import csv

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..errors import BadRequest

#: How much of a CSV file is read to choose its encoding and delimiter.
SAMPLE_BYTES = 256 * 1024
#: Tried in order on the sample when there is no byte-order mark. GB18030 is a superset
#: of GBK and GB2312 (what Chinese Excel writes as "CSV"); Latin-1 decodes anything.
ENCODINGS = ("utf-8", "gb18030", "big5", "latin-1")
BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
DELIMITERS = (",", "\t", ";", "|")
MAX_COLUMNS = 500
#: csv's default field limit is 128 KiB; a long remark column may be larger than that.
csv.field_size_limit(16 * 1024 * 1024)


@dataclass
class Table:
    """A file opened for reading: its kind, header, and the rows after the header."""

    format: str  # "csv" | "xlsx"
    headers: list[str]
    rows: Iterator[tuple[int, list[Any]]]  # (row number as the spreadsheet shows it, cells)
    encoding: str | None = None
    #: Data rows, when cheaply known (XLSX states its size; CSV is counted on demand).
    total: int | None = None


def sniff_format(path: Path) -> str:
    with path.open("rb") as fh:
        head = fh.read(8)
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise BadRequest("This is an old binary Excel (.xls) file; save it as .xlsx or CSV and upload that.")
    return "csv"


def detect_encoding(sample: bytes) -> str:
    """The encoding of a CSV sample: its byte-order mark, else the first of ENCODINGS that
    decodes it (the sample may end inside a character, so the decoder is incremental)."""
    for bom, name in BOMS:
        if sample.startswith(bom):
            return name
    for name in ENCODINGS:
        try:
            codecs.getincrementaldecoder(name)().decode(sample, final=False)
        except UnicodeDecodeError:
            continue
        return name
    return "latin-1"


def _delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _clean_header(cells: list[Any]) -> list[str]:
    headers = ["" if c is None else str(c).strip() for c in cells]
    while headers and headers[-1] == "":
        headers.pop()
    if not headers:
        raise BadRequest("The file has no header row (the first row names the columns).")
    if len(headers) > MAX_COLUMNS:
        raise BadRequest(f"The file has {len(headers)} columns; at most {MAX_COLUMNS}.")
    return headers


def _blank(cells: list[Any]) -> bool:
    return all(c is None or (isinstance(c, str) and not c.strip()) for c in cells)


def _csv_rows(reader: Iterator[list[str]], path: Path, encoding: str) -> Iterator[tuple[int, list[Any]]]:
    number = 1
    try:
        for cells in reader:
            number += 1
            if not _blank(cells):
                yield number, cells
    except UnicodeDecodeError:
        raise BadRequest(f"{path.name}: row {number + 1} is not valid {encoding} text; save the file as "
                         "UTF-8 CSV (or pass its encoding) and upload it again.") from None
    except csv.Error as exc:
        raise BadRequest(f"{path.name}: row {number + 1} is not valid CSV: {exc}.") from None


@contextmanager
def _open_csv(path: Path, encoding: str | None) -> Iterator[Table]:
    with path.open("rb") as raw:
        sample = raw.read(SAMPLE_BYTES)
    if encoding:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise BadRequest(f"Unknown encoding '{encoding}'.") from None
    encoding = encoding or detect_encoding(sample)
    with path.open("r", encoding=encoding, newline="") as fh:
        try:
            first = fh.readline()
        except UnicodeDecodeError:
            raise BadRequest(f"{path.name} is not valid {encoding} text.") from None
        fh.seek(0)
        reader = csv.reader(fh, delimiter=_delimiter(first))
        try:
            header = next(reader, None)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise BadRequest(f"{path.name}: the header row can't be read: {exc}.") from None
        if header is None:
            raise BadRequest(f"{path.name} is empty.")
        if header and header[0].startswith("\ufeff"):  # a BOM the chosen codec kept
            header[0] = header[0][1:]
        yield Table("csv", _clean_header(header), _csv_rows(reader, path, encoding), encoding)


def _xlsx_value(cell: Any) -> Any:
    return cell.strip() if isinstance(cell, str) else cell


@contextmanager
def _open_xlsx(path: Path) -> Iterator[Table]:
    import openpyxl  # noqa: PLC0415 - only XLSX uploads pay for the import
    from zipfile import BadZipFile

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (BadZipFile, KeyError, OSError, ValueError) as exc:
        raise BadRequest(f"{path.name} is not a readable XLSX workbook ({exc}).") from None
    try:
        sheet = book.worksheets[0] if book.worksheets else None
        if sheet is None:
            raise BadRequest(f"{path.name} has no worksheet.")
        stream = sheet.iter_rows(values_only=True)
        header = next(stream, None)
        if header is None:
            raise BadRequest(f"{path.name}: the first worksheet is empty.")
        headers = _clean_header(list(header))

        def rows() -> Iterator[tuple[int, list[Any]]]:
            for number, cells in enumerate(stream, start=2):
                values = [_xlsx_value(c) for c in cells]
                if not _blank(values):
                    yield number, values

        total = (sheet.max_row - 1) if sheet.max_row and sheet.max_row > 1 else None
        yield Table("xlsx", headers, rows(), None, total)
    finally:
        book.close()


@contextmanager
def open_table(path: str | Path, encoding: str | None = None) -> Iterator[Table]:
    """Open a CSV or XLSX file (recognised by its content, not its name) for reading."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise BadRequest(f"{path.name} is empty.")
    if sniff_format(path) == "xlsx":
        with _open_xlsx(path) as table:
            yield table
    else:
        with _open_csv(path, encoding) as table:
            yield table


def count_rows(path: str | Path, encoding: str | None = None) -> int | None:
    """The number of data rows, for a progress display (XLSX: as the workbook states it)."""
    with open_table(path, encoding) as table:
        if table.format == "xlsx":
            return table.total
        return sum(1 for _ in table.rows)


def text_of(value: Any) -> str:
    """A cell as text: 13812345678.0 from Excel is "13812345678", a date is ISO."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "isoformat"):
        text = value.isoformat()
        return text[:-9] if text.endswith("T00:00:00") else text.replace("T", " ")
    return str(value).strip()


__all__ = ["Table", "open_table", "count_rows", "detect_encoding", "text_of"]
