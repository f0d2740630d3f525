"""Checkpoints: safetensors weights with the model spec and metadata in one file.

``save(model, path, meta)`` writes ``path`` (``.safetensors``) whose header metadata holds the JSON
``{"spec": ModelSpec, "meta": meta}``, plus a readable copy of that JSON next to it
(``path.with_suffix(".json")``). ``load(path)`` rebuilds the architecture from the spec
(:func:`salbench.models.surgery.build_spec`) and loads the weights strictly, so the loaded
model computes exactly what the saved one did. ``meta`` is free-form JSON: the training pipeline
stores classes, normalisation, the training config, metrics, seed and ``data_hash``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from salbench.models.surgery import build_spec
from salbench.models.zoo import ModelSpec, spec_of

FORMAT = "salbench-checkpoint-1"


def save(model: nn.Module, path: str | Path, meta: dict | None = None) -> Path:
    """Write ``model``'s weights, spec and ``meta`` to ``path`` (``.safetensors`` added if missing).

    Returns the path written. ``meta`` must be JSON-serialisable.
    """
    spec = spec_of(model)
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_name(path.name + ".safetensors")
    try:
        header = json.dumps({"format": FORMAT, "spec": spec.model_dump(), "meta": meta or {}})
    except TypeError as err:
        raise ValueError(f"meta must be JSON-serialisable: {err}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"salbench": header})
    path.with_suffix(".json").write_text(json.dumps(json.loads(header), indent=2) + "\n")
    return path


def read_metadata(path: str | Path) -> dict:
    """``{"format", "spec", "meta"}`` of a checkpoint, without loading the weights."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    with safe_open(str(path), framework="pt") as f:
        header = (f.metadata() or {}).get("salbench")
    if header is None:
        raise ValueError(f"{path} is a safetensors file without salbench metadata")
    return json.loads(header)


def load(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the saved model (eval mode, on ``device``) and return ``(model, meta)``."""
    header = read_metadata(path)
    if header.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown checkpoint format {header.get('format')!r}")
    spec = ModelSpec.parse(header["spec"])
    model = build_spec(spec, load_weights=False)
    with safe_open(str(path), framework="pt") as f:
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open, not a dict)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval(), header["meta"]


def data_hash(data) -> str:
    """SHA-256 (hex, first 16 characters) of a dataset's images and targets.

    ``data``: anything with ``x``/``y`` tensors (``GroundTruthDataset``), a ``TensorDataset`` or a
    tuple ``(x, y, ...)``. Hashes the raw bytes, so it identifies the exact training data.
    """
    if isinstance(data, (tuple, list)):
        tensors = data[:2]
    elif hasattr(data, "tensors"):
        tensors = data.tensors[:2]
    elif hasattr(data, "x") and hasattr(data, "y"):
        tensors = (data.x, data.y)
    else:
        raise TypeError(f"cannot hash {type(data).__name__}: expected x/y tensors")
    digest = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        digest.update(str((tuple(t.shape), str(t.dtype))).encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()[:16]

