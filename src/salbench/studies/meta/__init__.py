"""Meta-evaluation: which metrics can you trust on your model and data?

A metric is useful only if it tells good maps from bad ones. ``salbench meta --model model.pt
--data images/ --masks masks/`` (or :func:`run_meta`) loads the model and the images as
``salbench benchmark`` does (``salbench.models.loading``, ``salbench.data.sources``), builds the
ground-truth mask as a map known good by construction, degraded copies of it and copies that
should score the same (:mod:`~salbench.studies.meta.maps`), scores every applicable registered
metric on all of them for several seeds, and judges each metric output by discrimination,
resilience, stability and cost (:mod:`~salbench.studies.meta.analysis`).

Applicable metrics are those scoring one given map: kinds ``ground_truth``, ``map`` and ``model``
(``soft_five_band`` only with 0 / 0.4 / 0.9 ground truth). Metrics of a method rather than a map
(``explainer``: sensitivity, randomisation), of a pair of maps or of the classifier alone are
skipped with their reason, and so are outputs that rank nothing (direction ``none``) and set-level
aggregates.

The mask is known good for the data, not for the model: a model may use other pixels. With
``linear=True`` (``--linear``) the metrics that read the model (kind ``model``) are judged a
second time on a **linear reference**, a ``Flatten → Linear`` classifier fitted to the same
samples (:func:`~salbench.studies.meta.maps.fit_linear`), whose exact map for each metric
(:func:`~salbench.studies.meta.maps.exact_map`: ``W_y ⊙ (x − r)`` with r the image that metric
puts where it removes pixels, ``W_y`` for infidelity, a map summing to f_y(x) for conservation)
is its good map: known good for that model by construction, whatever the mask says.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from salbench.data.sources import load_source
from salbench.metrics import available, get_metric, label, score
from salbench.runtime import resolve_device, seed_everything
from salbench.studies.benchmark.config import ModelSource
from salbench.studies.benchmark.grid import user_model
from salbench.studies.benchmark.plan import mask_kind
from salbench.studies.meta.analysis import (
    NOT_TESTABLE,
    agreement,
    discrimination,
    trust_table,
)
from salbench.studies.meta.maps import INDEPENDENT, KINDS, exact_map, fit_linear, make_maps
from salbench.studies.meta.report import write_page

SCORED_KINDS = ("ground_truth", "map", "model")
LINEAR_KINDS = ("model",)
"""The metric kinds judged on the linear reference: those that read the model (the contribution
map is good for the model; nothing makes it good for the mask)."""
NOT_A_MAP = {"explainer": "scores an explanation method (re-explains perturbed inputs), not a "
                          "given map",
             "map_pair": "compares two maps (needs a reference map)",
             "model_pair": "compares two maps (needs a reference map)",
             "classifier": "scores the classifier, not a map"}
N_SAMPLES = 16
SEEDS = 3
ACCURACY_GATE = 0.8
"""Default ``--accuracy-gate``: under this accuracy of the model on the scored samples, the
metrics that read it are ``not testable`` on the mask reference (a model that has not learned
makes every perturbation curve look blind; the studies' cells and stand-in gates are 0.8)."""


def cheap_params(name: str, size: int) -> dict[str, Any]:
    """The cheap settings of metric ``name`` for images of side ``size`` (few perturbation steps
    and samples; a [0, 1] input range as salbench's data and the benchmark use)."""
    cheap = {
        "region_perturbation": {"patch": max(2, size // 8)},
        "aopc": {"region": max(1, size // 8), "steps": 8, "input_range": [0.0, 1.0]},
        "haas": {"input_range": [0.0, 1.0]},
        "pixel_flipping": {"steps": "log:16"},
        "deletion": {"steps": "log:16"},
        "insertion": {"steps": "log:16"},
        "infidelity": {"n_samples": 10},
        "top_k_intersection": {"k": min(1000, max(1, size * size // 10))},
        "selectivity": {"patch": max(2, size // 8)},
        "irof": {"n_segments": 16},
        "road": {"percentages": [25, 50, 75]},
    }
    params = dict(cheap.get(name, {}))
    known = get_metric(name).params
    return {k: v for k, v in params.items() if k in known}


def applicable(masks: str | None, names: list[str] | None = None
               ) -> tuple[list[str], dict[str, str]]:
    """The metrics to score (``names``, default every applicable one) for ground truth of kind
    ``masks`` (``binary`` / ``levels``), and why the others are skipped. A named metric that
    cannot score a given map is a ValueError naming ``--metrics``."""
    chosen, skipped = [], {}
    for spec in available():
        if spec.kind not in SCORED_KINDS:
            skipped[spec.name] = NOT_A_MAP[spec.kind]
        elif spec.mask == "levels" and masks != "levels":
            skipped[spec.name] = "needs document 001's 0 / 0.4 / 0.9 ground truth"
        elif not any(o.level == "sample" and o.resolve_direction(spec.params) != "none"
                     for o in spec.outputs):
            skipped[spec.name] = "no per-sample output that ranks maps"
        else:
            chosen.append(spec.name)
    if names is None:
        return chosen, skipped
    for name in names:
        get_metric(name)  # ValueError naming the registered metrics
        if name not in chosen:
            raise ValueError(f"--metrics: {name!r} cannot score a given map here "
                             f"({skipped[name]})")
    return list(dict.fromkeys(names)), {}


@dataclass
class Inputs:
    """The samples a meta-evaluation scores: model (``hooks``: False for TorchScript), images,
    true classes, masks, sample ids, the masks' kind (``binary`` / ``levels``), the model's
    number of classes, the count of samples skipped for an empty mask and the model's accuracy
    on the samples."""

    model: nn.Module
    hooks: bool
    x: Tensor
    y: Tensor
    m: Tensor
    ids: list[str]
    mask_kind: str
    classes: int
    skipped_samples: int = 0
    accuracy: float = math.nan


def load_inputs(model: str | Path, data: str | Path, *, masks: str | Path | None = None,
                arch: str | None = None, num_classes: int | None = None,
                normalize: str = "none", size: int | None = None, n_samples: int = N_SAMPLES,
                device: str = "cpu") -> Inputs:
    """The model and the first ``n_samples`` samples with a non-empty mask (of the ``test``
    split when the data have one); every problem is a one-line ValueError naming the argument."""
    dataset = load_source(data, masks, size)
    if "split" in dataset.meta and (dataset.meta["split"] == "test").any():
        dataset = dataset.split("test")
    kind = mask_kind(dataset)
    if kind is None:
        raise ValueError("--masks: meta-evaluation needs ground-truth masks and the data have "
                         "none (give --masks or data with masks)")
    filled = (dataset.masks.flatten(1).amax(1) > 0).nonzero().flatten().tolist()
    chosen = dataset.subset(filled[:n_samples])
    source = ModelSource.parse({"path": str(model), "arch": arch, "num_classes": num_classes,
                                "normalize": normalize})
    loaded = user_model(source, device)
    x, y = chosen.x.to(device), chosen.y.to(device)
    try:
        with torch.inference_mode():
            out = loaded.model(x[:2])
    except RuntimeError as err:
        raise ValueError(f"--data images are {tuple(x.shape[1:])} (C, H, W) but the model fails "
                         f"on them: {str(err).strip().splitlines()[0][:160]}") from None
    if out.ndim != 2:
        raise ValueError(f"--model must return class scores [N, K], got shape {tuple(out.shape)}")
    if int(y.max()) >= out.shape[1]:
        raise ValueError(f"--data holds class {int(y.max())} but the model has {out.shape[1]} "
                         f"outputs (classes 0..{out.shape[1] - 1})")
    ids = chosen.meta["sample_id"].astype(str).tolist() if "sample_id" in chosen.meta \
        else [str(i) for i in range(len(chosen))]
    return Inputs(loaded.model, loaded.hooks, x, y, chosen.masks.to(device), ids, kind,
                  int(out.shape[1]), len(dataset) - len(filled), accuracy(loaded.model, x, y))


def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch: int = 64) -> float:
    """The share of the samples ``x`` whose top class is ``y``."""
    with torch.inference_mode():
        predicted = torch.cat([model(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)])
    return float((predicted == y).float().mean())


def _rows(metric: str, params: dict, result, kind: str, seed: int, ids: list[str]
          ) -> list[pd.DataFrame]:
    spec = get_metric(metric)
    parts = []
    for output, values in result.values.items():
        direction = spec.direction(output, params)
        if direction == "none":
            continue
        parts.append(pd.DataFrame({
            "metric": metric, "output": output, "score": label(metric, output, params),
            "direction": direction, "kind": kind, "seed": seed, "sample_id": ids,
            "value": values.numpy()}))
    return parts


def score_maps(inputs: Inputs, metrics: list[str], seeds: list[int], good: Tensor | None = None
               ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """Score every map kind of every seed with every metric (the good map: ``good``, default the
    mask): the long scores frame, the cost per metric (declared ``forward`` passes and
    ``explanations`` per sample, measured ``seconds_per_map``) and the metrics or map kinds that
    failed (name -> reason)."""
    size = int(inputs.x.shape[-1])
    kinds = [k for k in KINDS if inputs.hooks or k != "random_model"]
    skipped = {} if inputs.hooks else {
        "random_model maps": "need hooks on the model's modules (TorchScript)"}
    parts: dict[str, list[pd.DataFrame]] = {name: [] for name in metrics}
    seconds = dict.fromkeys(metrics, 0.0)
    for seed in seeds:
        try:
            maps = make_maps(inputs.model, inputs.x, inputs.y, inputs.m, seed, kinds, good)
        except (ValueError, RuntimeError, TypeError) as err:  # random_model on this model
            if "random_model" not in kinds:
                raise
            skipped["random_model maps"] = str(err).strip().splitlines()[0][:200]
            kinds = [k for k in kinds if k != "random_model"]
            maps = make_maps(inputs.model, inputs.x, inputs.y, inputs.m, seed, kinds, good)
        for name in list(parts):
            spec = get_metric(name)
            params = cheap_params(name, size) | ({"seed": seed} if "seed" in spec.params else {})
            given = {"model": inputs.model, "x": inputs.x, "y": inputs.y, "m": inputs.m}
            try:
                for kind, a in maps.items():
                    start = time.perf_counter()
                    result = score(name, **{k: given[k] for k in spec.inputs if k != "a"}, a=a,
                                   **params)
                    seconds[name] += time.perf_counter() - start
                    parts[name] += _rows(name, spec.resolve(params), result, kind, seed,
                                         inputs.ids)
            except (ValueError, RuntimeError, TypeError) as err:
                skipped[name] = str(err).strip().splitlines()[0][:200] or type(err).__name__
                del parts[name]
    frames = [p for name in parts for p in parts[name]]
    scores = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["metric", "output", "score", "direction", "kind", "seed", "sample_id", "value"])
    shape = tuple(int(s) for s in inputs.x.shape[1:])
    n_maps = len(seeds) * len(kinds) * len(inputs.ids)
    costs = []
    for name in parts:
        cost = get_metric(name).estimate(cheap_params(name, size), shape, inputs.model)
        costs.append({"metric": name, "forward": cost.forward,
                      "explanations": cost.explanations,
                      "seconds_per_map": seconds[name] / max(1, n_maps)})
    return scores, pd.DataFrame(costs, columns=["metric", "forward", "explanations",
                                                "seconds_per_map"]), skipped


@dataclass
class MetaResult:
    """What :func:`run_meta` returns (and writes): the long ``scores``, the ``trust`` table,
    the ``discrimination`` rows per (score, degraded kind), the ``agreement`` matrix, the
    ``costs``, what was ``skipped`` (name -> reason), the settings and, with ``linear=True``,
    the same for the linear reference (``linear``)."""

    scores: pd.DataFrame
    trust: pd.DataFrame
    discrimination: pd.DataFrame
    agreement: pd.DataFrame
    costs: pd.DataFrame
    skipped: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    linear: MetaResult | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: settings, skipped, the trust table's rows, the agreement matrix and the
        linear reference's (``linear``, when run)."""
        def clean(value: Any) -> Any:
            if isinstance(value, (float, np.floating)):
                return None if not math.isfinite(float(value)) else float(value)
            if isinstance(value, np.integer):
                return int(value)
            if isinstance(value, np.bool_):
                return bool(value)
            return value

        trust = [{k: clean(v) for k, v in row.items()}
                 for row in self.trust.to_dict(orient="records")]
        rho = [[clean(v) for v in row] for row in self.agreement.to_numpy()]
        linear = {} if self.linear is None else {"linear": self.linear.to_dict()}
        return {**self.settings, "skipped": self.skipped, "trust": trust,
                "agreement": {"scores": list(self.agreement.columns), "rho": rho}, **linear}

    def _write_tables(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.scores.to_parquet(out / "scores.parquet", index=False)
        self.trust.to_parquet(out / "trust.parquet", index=False)
        self.discrimination.to_parquet(out / "discrimination.parquet", index=False)
        self.agreement.reset_index().to_parquet(out / "agreement.parquet", index=False)

    def write(self, out: str | Path) -> Path:
        """The tables as Parquet (the linear reference's in ``out/linear``), everything as
        ``meta.json`` and the HTML page (``report/index.html``, :mod:`.report`) in ``out``."""
        out = Path(out)
        self._write_tables(out)
        if self.linear is not None:
            self.linear._write_tables(out / "linear")
        (out / "meta.json").write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        write_page(out / "report", self)
        return out


def check_options(n_samples: int, seeds: int, normalize: str,
                  accuracy_gate: float = ACCURACY_GATE) -> None:
    """Options checked before any loading: one-line ValueErrors naming the option."""
    if not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"--n-samples must be a positive integer, got {n_samples!r}")
    if not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"--seeds must be a positive integer, got {seeds!r}")
    if normalize not in ("none", "imagenet"):
        raise ValueError(f"--normalize must be none or imagenet, got {normalize!r}")
    if (isinstance(accuracy_gate, bool) or not isinstance(accuracy_gate, (int, float))
            or not 0 <= accuracy_gate <= 1):
        raise ValueError(f"--accuracy-gate must be a number in [0, 1], got {accuracy_gate!r}")


def check_metrics(names: list[str] | None, linear: bool = False) -> None:
    """Metric names checked before any loading: each registered and of a kind that scores a
    given map, and with ``linear`` at least one that reads the model (a one-line ValueError
    naming the option otherwise)."""
    known = [spec.name for spec in available()]
    for name in names or []:
        if name not in known:
            raise ValueError(f"--metrics: unknown metric {name!r} (see `salbench metrics`)")
        kind = get_metric(name).kind
        if kind not in SCORED_KINDS:
            raise ValueError(f"--metrics: {name!r} cannot score a given map ({NOT_A_MAP[kind]})")
    if names is not None and not names:
        raise ValueError("--metrics: name at least one metric")
    if linear and names is not None and not any(
            get_metric(n).kind in LINEAR_KINDS for n in names):
        raise ValueError("--linear: none of --metrics reads the model (kind 'model', e.g. "
                         "region_perturbation); the linear reference judges only those")


def run_meta(model: str | Path, data: str | Path, *, masks: str | Path | None = None,
             arch: str | None = None, num_classes: int | None = None, normalize: str = "none",
             size: int | None = None, metrics: list[str] | None = None,
             n_samples: int = N_SAMPLES, seeds: int = SEEDS, linear: bool = False,
             accuracy_gate: float = ACCURACY_GATE, out: str | Path | None = None,
             device: str = "auto") -> MetaResult:
    """Meta-evaluate the metrics on ``model`` and ``data`` (+ ``masks``): see ``salbench meta
    --help`` for each argument. Writes the tables to ``out`` when given; returns them."""
    check_options(n_samples, seeds, normalize, accuracy_gate)
    check_metrics(metrics, linear)
    dev = str(resolve_device(device))
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:  # a library call: the caller's random state comes back as it was
        with torch.random.fork_rng(devices=range(torch.cuda.device_count())):
            seed_everything(0)
            return _run(model, data, masks, arch, num_classes, normalize, size, metrics,
                        n_samples, seeds, linear, accuracy_gate, out, dev)
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def _judge(inputs: Inputs, names: list[str], seeds: list[int], skipped: dict[str, str],
           settings: dict[str, Any], good: dict[str, Tensor] | None = None) -> MetaResult:
    """Score and judge the metrics ``names``; ``good`` maps a metric to its good map (default:
    the mask for all). Metrics sharing a good map share its degraded maps."""
    groups: dict[int, tuple[Tensor | None, list[str]]] = {}
    for name in names:
        a = None if good is None else good[name]
        groups.setdefault(id(a), (a, []))[1].append(name)
    parts = [score_maps(inputs, group, seeds, a) for a, group in groups.values()]
    scores = pd.concat([p[0] for p in parts], ignore_index=True)
    costs = pd.concat([p[1] for p in parts], ignore_index=True)
    failed = {k: v for p in parts for k, v in p[2].items()}
    skipped = skipped | failed
    if scores.empty:
        raise ValueError("--metrics: no metric could score the maps ("
                         + "; ".join(f"{k}: {v}" for k, v in list(failed.items())[:3]) + ")")
    # Metrics of different groups scored different good and degraded maps: their agreement is
    # measured on the maps they all scored.
    shared = scores if len(groups) == 1 else scores[scores["kind"].isin(INDEPENDENT)]
    return MetaResult(scores, trust_table(scores, costs), discrimination(scores),
                      agreement(shared), costs, skipped,
                      {**settings, "kinds": sorted(set(scores["kind"]))})


def linear_reference(inputs: Inputs, names: list[str], seeds: list[int],
                     settings: dict[str, Any]) -> MetaResult:
    """The metrics of ``names`` that read the model judged on a linear model fitted to the
    samples, each with the model's exact map for it as the good map (module docstring)."""
    model = fit_linear(inputs.x, inputs.y, inputs.classes)
    fitted = accuracy(model, inputs.x, inputs.y)
    chosen = [n for n in names if get_metric(n).kind in LINEAR_KINDS]
    skipped = {n: "reads no model: its good map is the mask's, not the linear model's"
               for n in names if n not in chosen}
    size = int(inputs.x.shape[-1])
    shared: dict[str, Tensor] = {}  # metrics with the same good map share it and its degradations
    good, described = {}, {}
    for name in chosen:
        params = get_metric(name).resolve(cheap_params(name, size))
        a, how = exact_map(model, inputs.x, inputs.y, name, params)
        good[name] = shared.setdefault(how, a)
        described[name] = how
    reference = dataclasses.replace(inputs, model=model, hooks=True, accuracy=fitted)
    return _judge(reference, chosen, seeds, skipped,
                  {**settings, "reference": "linear", "linear_train_accuracy": fitted,
                   "good_maps": described}, good)


def under_gate(trust: pd.DataFrame, accuracy: float, gate: float) -> pd.DataFrame:
    """``trust`` with the metrics that read the model ``not testable`` when the model's
    ``accuracy`` on the scored samples is under ``gate`` (the others keep their verdicts: the
    mask is good for the data whatever the model learned)."""
    if not accuracy < gate:
        return trust
    reads_model = trust["metric"].map(lambda name: get_metric(name).kind in LINEAR_KINDS)
    return trust.assign(
        verdict=trust["verdict"].where(~reads_model, NOT_TESTABLE),
        reason=trust["reason"].where(
            ~reads_model, f"model accuracy {accuracy:.2f} < gate {gate:g} on these samples"))


def _run(model, data, masks, arch, num_classes, normalize, size, metrics, n_samples, seeds,
         linear, accuracy_gate, out, dev) -> MetaResult:
    inputs = load_inputs(model, data, masks=masks, arch=arch, num_classes=num_classes,
                         normalize=normalize, size=size, n_samples=n_samples, device=dev)
    names, skipped = applicable(inputs.mask_kind, metrics)
    seed_list = list(range(seeds))
    settings = {"model": str(model), "data": str(data),
                "masks": None if masks is None else str(masks), "n_samples": len(inputs.ids),
                "seeds": seed_list, "skipped_samples_without_mask": inputs.skipped_samples}
    result = _judge(inputs, names, seed_list, skipped,
                    {**settings, "reference": "mask", "model_accuracy": inputs.accuracy,
                     "accuracy_gate": accuracy_gate})
    result.trust = under_gate(result.trust, inputs.accuracy, accuracy_gate)
    if linear:
        result.linear = linear_reference(inputs, names, seed_list, settings)
    if out is not None:
        result.write(out)
    return result
