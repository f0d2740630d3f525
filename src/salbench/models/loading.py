"""A user's own model, from whatever file they have, as an ``nn.Module`` in eval mode.

Sources (:func:`load_model`):

- a **salbench checkpoint** (``.safetensors`` with salbench metadata: ``salbench train`` writes it);
- a **torch.save'd module** (``torch.save(model, "model.pt")``; unpickled with
  ``weights_only=False``, so only load files you trust, as with any pickle);
- a **state dict** (``torch.save(model.state_dict(), ...)`` or ``.safetensors`` without salbench
  metadata) with ``arch``: a zoo architecture (``salbench.models.ARCHITECTURES``) or any
  torchvision classification model (``torchvision.models.list_models``); the class count is read
  from the last layer when not given;
- a **factory** ``package.module:function`` returning the module (called without arguments);
- a **TorchScript** file (``torch.jit.save``): methods that need forward/backward hooks cannot run
  on it (``LoadedModel.hooks`` is False; the benchmark skips them, naming the reason).

Every failure is a ``ValueError`` (or ``FileNotFoundError``) of one line naming the argument.
"""

from __future__ import annotations

import importlib
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn

from salbench.models.checkpoints import load as load_checkpoint
from salbench.models.zoo import ARCHITECTURES, build

SOURCES = ("checkpoint", "module", "state_dict", "factory", "torchscript")
FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass(frozen=True)
class LoadedModel:
    """A loaded model: ``source`` (one of :data:`SOURCES`), ``hooks`` (False for TorchScript:
    no method that hooks into modules can run on it) and a one-line ``description``."""

    model: nn.Module
    source: str
    hooks: bool
    description: str


def torchvision_architectures() -> list[str]:
    """torchvision's classification models (``torchvision.models.list_models``)."""
    return sorted(torchvision.models.list_models(module=torchvision.models))


def load_model(source: str | Path, *, arch: str | None = None, num_classes: int | None = None,
               in_channels: int = 3, input_size: int = 224,
               device: str | torch.device = "cpu") -> LoadedModel:
    """Load the model ``source`` names (see the module docstring), on ``device``, in eval mode.

    ``arch`` / ``num_classes`` / ``in_channels`` / ``input_size``: for a state dict only (the
    architecture to build it into; the class count defaults to the last layer's)."""
    text = str(source)
    path = Path(text)
    if not path.exists() and FACTORY.match(text):
        loaded = _from_factory(text)
    elif not path.is_file():
        raise FileNotFoundError(f"--model {text!r}: no such file (expected a salbench checkpoint,"
                                " a torch.save'd module or state dict, a TorchScript file, or a "
                                "package.module:factory)")
    elif path.suffix == ".safetensors":
        loaded = _from_safetensors(path, arch, num_classes, in_channels, input_size)
    elif _is_torchscript(path):
        model = torch.jit.load(str(path), map_location="cpu")
        loaded = LoadedModel(model, "torchscript", False, f"TorchScript module from {path.name}")
    else:
        loaded = _from_pickle(path, arch, num_classes, in_channels, input_size)
    return LoadedModel(loaded.model.to(device).eval(), loaded.source, loaded.hooks,
                       loaded.description)


def _from_factory(text: str) -> LoadedModel:
    module_name, _, function = text.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), function)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"--model {text!r}: cannot import the factory ({err})") from None
    model = factory()
    if not isinstance(model, nn.Module):
        raise ValueError(f"--model {text!r}: the factory returned {type(model).__name__}, "
                         "not a torch.nn.Module")
    return LoadedModel(model, "factory", True, f"{type(model).__name__} from {text}")


def _from_safetensors(path: Path, arch, num_classes, in_channels, input_size) -> LoadedModel:
    try:
        with safe_open(str(path), framework="pt") as f:
            salbench_header = "salbench" in (f.metadata() or {})
        if salbench_header:
            model, _ = load_checkpoint(path)
            return LoadedModel(model, "checkpoint", True,
                               f"salbench checkpoint {path.name} ({model.salbench_spec.arch})")
        state = load_file(str(path))
    except SafetensorError as err:
        raise ValueError(f"--model {str(path)!r} is not a readable safetensors file (truncated "
                         f"or foreign: {str(err).splitlines()[0]})") from None
    return _from_state_dict(state, path, arch, num_classes, in_channels, input_size)


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives hold the module's code (``<name>/code/``); torch.save files do not."""
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return any("/code/" in name for name in archive.namelist())
    except zipfile.BadZipFile:
        return False


def _from_pickle(path: Path, arch, num_classes, in_channels, input_size) -> LoadedModel:
    try:
        content = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise ValueError(f"--model {str(path)!r} is not a readable torch file "
                         f"({type(err).__name__}: {str(err).splitlines()[0][:120]})") from None
    if isinstance(content, nn.Module):
        return LoadedModel(content, "module", True, f"{type(content).__name__} from {path.name}")
    if isinstance(content, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(content.get(key), dict):
                content = content[key]
                break
        if content and all(isinstance(v, torch.Tensor) for v in content.values()):
            return _from_state_dict(content, path, arch, num_classes, in_channels, input_size)
    raise ValueError(f"--model {str(path)!r} holds {type(content).__name__}, not a module or a "
                     "state dict")


def _from_state_dict(state: dict[str, torch.Tensor], path: Path, arch, num_classes,
                     in_channels, input_size) -> LoadedModel:
    if arch is None:
        raise ValueError(f"--model {str(path)!r} is a state dict: give its architecture with "
                         f"--arch (one of {', '.join(ARCHITECTURES)} or a torchvision model "
                         "name)")
    if num_classes is None:
        num_classes = _class_count(state)
    if arch in ARCHITECTURES:
        model = build(arch, num_classes, in_channels, input_size)
    elif arch in torchvision_architectures():
        model = torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
    else:
        zoo = ", ".join(ARCHITECTURES)
        raise ValueError(f"--arch {arch!r} is neither a zoo architecture ({zoo}) nor a "
                         "torchvision classification model")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).replace("\n", " ")[:200]
        raise ValueError(f"--model {str(path)!r} does not fit --arch {arch} with {num_classes} "
                         f"classes: {first}") from None
    return LoadedModel(model, "state_dict", True,
                       f"{arch} ({num_classes} classes) with the weights of {path.name}")


def _class_count(state: dict[str, torch.Tensor]) -> int:
    """Outputs of the last 2-D weight of a state dict (the class-score layer)."""
    weights = [v for k, v in state.items() if k.endswith("weight") and v.ndim == 2]
    if not weights:
        raise ValueError("cannot read the class count from the state dict: give --num-classes")
    return int(weights[-1].shape[0])


class Normalise(nn.Module):
    """``(x − mean) / std`` per channel: the input normalisation a model was trained with, as a
    first layer, so attributions and perturbations stay in pixel space [0, 1]."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def with_normalisation(model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]
                       ) -> nn.Module:
    """``model`` behind a :class:`Normalise` layer (``nn.Sequential``; the model is not copied)."""
    return nn.Sequential(Normalise(mean, std), model)
