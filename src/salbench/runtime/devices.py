"""Device selection: CUDA when present unless the user asks for the CPU."""

from __future__ import annotations

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Map ``"auto"`` to ``cuda`` when a GPU is visible, else ``cpu``; pass explicit names through.

    ``"cuda:1"`` style names are accepted. Asking for CUDA on a machine without it is an error.
    """
    if isinstance(device, torch.device):
        return device
    name = str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} asks for CUDA, but no CUDA device is visible; "
                             "use 'auto' or 'cpu'")
        return torch.device(name)
    raise ValueError(f"device must be one of {DEVICE_CHOICES} (or 'cuda:N'), got {device!r}")
