"""Bulk import of CSV and XLSX files into any entity, through the record service.

`readers` turns a file into a header and a stream of rows, `mapping` matches columns to
fields, `cells` turns cell text into field values (lookups by title, options by label),
`matching` is the dedup step (what a duplicate means under each mode), `importer` runs
the rows in batches, and `jobs` records each run so its progress and error report
outlive the request that started it.
"""
