"""The four result tables and how rows are made from a metric's record.

- ``results``: one row per (sample, method, metric output): the per-sample scores the
  leaderboard ranks, with the output's ``direction`` (``higher``/``lower``/``none``, from the
  metric registry) on the row;
- ``curves``: one row per (sample, method, metric curve, point): perturbation curves, five-band
  scores per threshold, randomisation similarity per layer;
- ``summaries``: one row per value computed over a set of samples: a model's test accuracy, HAAS
  = Acc(HA)/Acc(x), a study's run-level measurements; ``n`` is the number of samples behind it;
- ``predictions``: one row per (model, sample): true and predicted class, correctness.

Every table has ``study, run, dataset, model_id``. ``metric_params`` and ``method_params`` hold
the parameters as used (JSON); ``meta`` per-sample facts (JSON). A row's **factors** (what a study
varies: patch size, radius, γ, ε, stabiliser, degree, corpus; by default the explicitly set
metric parameters) are real columns of their own, in SQL and in :func:`read_results` alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
import pyarrow as pa

from salbench.metrics.registry import MetricResult, get_metric, jsonable

KEYS = ("study", "run", "dataset", "model_id")
_STR, _F64, _I64, _BOOL = pa.string(), pa.float64(), pa.int64(), pa.bool_()
SCHEMAS: dict[str, pa.Schema] = {
    "results": pa.schema([(k, _STR) for k in KEYS] + [
        ("method", _STR), ("metric", _STR), ("output", _STR), ("sample_id", _STR),
        ("value", _F64), ("direction", _STR), ("metric_params", _STR), ("method_params", _STR),
        ("meta", _STR)]),
    "curves": pa.schema([(k, _STR) for k in KEYS] + [
        ("method", _STR), ("metric", _STR), ("curve", _STR), ("sample_id", _STR),
        ("point", _I64), ("x", _F64), ("label", _STR), ("value", _F64),
        ("metric_params", _STR), ("method_params", _STR)]),
    "summaries": pa.schema([(k, _STR) for k in KEYS] + [
        ("method", _STR), ("metric", _STR), ("output", _STR), ("value", _F64),
        ("direction", _STR), ("n", _I64), ("metric_params", _STR), ("method_params", _STR),
        ("meta", _STR)]),
    "predictions": pa.schema([(k, _STR) for k in KEYS] + [
        ("split", _STR), ("sample_id", _STR), ("true", _I64), ("predicted", _I64),
        ("correct", _BOOL), ("meta", _STR)]),
}
TABLES = tuple(SCHEMAS)
JSON_COLUMNS = ("metric_params", "method_params", "meta")
FIXED = frozenset(name for schema in SCHEMAS.values() for name in schema.names)
Rows = pd.DataFrame | Iterable[Mapping[str, Any]]


def to_table(table: str, rows: Rows | None, defaults: Mapping[str, str]) -> pa.Table:
    """Rows of ``table`` as an Arrow table: its fixed columns typed by :data:`SCHEMAS` (missing
    key columns from ``defaults``, JSON columns from dicts), then the factor columns, each
    holding bool/int/float/str (lists and dicts as JSON text; null where a row lacks it)."""
    if table not in SCHEMAS:
        raise ValueError(f"table must be one of {TABLES}, got {table!r}")
    schema = SCHEMAS[table]
    records = rows.to_dict("records") if isinstance(rows, pd.DataFrame) else list(rows or [])
    if not records:
        return schema.empty_table()
    present = set().union(*records)
    arrays = []
    for name, field in zip(schema.names, schema):
        if name in present:
            values = [r.get(name) for r in records]
        elif name in defaults:
            values = [defaults[name]] * len(records)
        elif name in JSON_COLUMNS:
            values = ["{}"] * len(records)
        elif name == "label":
            values = [""] * len(records)
        else:
            raise ValueError(f"{table} rows: column {name!r} is missing and has no default")
        if name in JSON_COLUMNS:
            values = _json_texts(values)
        arrays.append(pa.array(values, type=field.type))
    factors = sorted(present - set(schema.names))
    arrays += [_factor_array(name, [_factor_value(name, r.get(name)) for r in records])
               for name in factors]
    return pa.Table.from_arrays(arrays, names=[*schema.names, *factors])


def _json_texts(values: list) -> list[str]:
    """Each value as sorted-key JSON text (strings kept); rows that share one dict object (a
    job's parameters, repeated on every sample's row) are encoded once."""
    texts: dict[int, str] = {}
    out = []
    for v in values:
        if not isinstance(v, str):
            if id(v) not in texts:
                texts[id(v)] = json.dumps(jsonable(v or {}), sort_keys=True)
            v = texts[id(v)]
        out.append(v)
    return out


def _factor_array(name: str, values: list) -> pa.Array:
    """A factor column: typed when its values share a type (ints and floats are numbers); text
    when they do not (two metrics' ``steps``: ``"square"`` and ``16``)."""
    kinds = {type(v) for v in values if v is not None}
    if len(kinds) > 1 and not kinds <= {int, float}:
        values = [None if v is None else str(v) for v in values]
    return pa.array(values)


def _factor_value(name: str, value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(jsonable({name: value})[name], sort_keys=True)
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    raise TypeError(f"factor {name!r} must be a bool, number, string, list or dict, "
                    f"got {type(value).__name__}")


def merge_factors(*sources: Mapping[str, Any]) -> dict[str, Any]:
    """One factor dict from several sources (model, method, metric); a name given twice with
    different values, or a name of a fixed column, is an error naming it."""
    out: dict[str, Any] = {}
    for source in sources:
        for key, value in source.items():
            if key in FIXED:
                raise ValueError(f"factor {key!r} is a column of the result tables; rename it")
            if key in out and out[key] != value:
                raise ValueError(f"factor {key!r} is given twice ({out[key]!r} and {value!r}); "
                                 "rename one of them")
            out[key] = value
    return out


def metric_rows(result: MetricResult, *, dataset: str, model_id: str, method: str,
                sample_ids: Sequence[str], method_params: Mapping[str, Any] | None = None,
                factors: Mapping[str, Any] | None = None,
                meta: Sequence[Mapping[str, Any]] | None = None) -> dict[str, list[dict]]:
    """The ``results``, ``curves`` and ``summaries`` rows of one metric record: one per sample and
    output, per sample and curve point, and per set-level output. Directions come from the
    registry, for the record's parameters."""
    if len(sample_ids) != result.n and result.values:
        raise ValueError(f"sample_ids has {len(sample_ids)} entries for {result.n} scored samples")
    spec = get_metric(result.metric)
    common = {"dataset": dataset, "model_id": model_id, "method": method,
              "metric": result.metric, "metric_params": result.params,
              "method_params": dict(method_params or {}), **(factors or {})}
    meta = meta if meta is not None else [{}] * len(sample_ids)
    out: dict[str, list[dict]] = {"results": [], "curves": [], "summaries": []}
    for output, values in result.values.items():
        direction = spec.direction(output, result.params)
        out["results"] += [{**common, "output": output, "sample_id": sid, "value": v,
                            "direction": direction, "meta": extra}
                           for sid, v, extra in zip(sample_ids, values.cpu().tolist(), meta)]
    for name, curve in result.curves.items():
        xs = curve.x.double().cpu().tolist()
        labels = list(curve.labels) or [""] * len(xs)
        for sid, values in zip(sample_ids, curve.values.double().cpu().tolist()):
            out["curves"] += [{**common, "curve": name, "sample_id": sid, "point": k, "x": x,
                               "label": lab, "value": v}
                              for k, (x, lab, v) in enumerate(zip(xs, labels, values))]
    for output, value in result.aggregates.items():
        out["summaries"].append({**common, "output": output, "value": value,
                                 "direction": spec.direction(output, result.params),
                                 "n": result.n, "meta": {}})
    return out


def concat(parts: Iterable[Mapping[str, list[dict]]]) -> dict[str, list[dict]]:
    """Rows of several :func:`metric_rows` calls, table by table."""
    out: dict[str, list[dict]] = {}
    for part in parts:
        for table, rows in part.items():
            out.setdefault(table, []).extend(rows)
    return out
