"""Results: four tables of long rows (``results``, ``curves``, ``summaries``, ``predictions``) in
Parquet parts per job, queried with DuckDB (``store``, ``tables``); statistics (``stats``)."""

from salbench.results.store import (
    ResultStore,
    RunLockedError,
    StoreStatus,
    connect,
    query,
    read_results,
)
from salbench.results.tables import SCHEMAS, TABLES, concat, merge_factors, metric_rows

__all__ = ["SCHEMAS", "TABLES", "ResultStore", "RunLockedError", "StoreStatus", "concat",
           "connect", "merge_factors", "metric_rows", "query", "read_results"]
