"""Results: long rows in Parquet parts, queried with DuckDB (``store``); statistics (``stats``)."""

from salbench.results.store import COLUMNS, ResultStore, query, read_results

__all__ = ["COLUMNS", "ResultStore", "query", "read_results"]
