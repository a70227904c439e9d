"""Devices chosen by the caller, checked before any weight is read or moved.

:func:`check_device` turns ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` into a ``torch.device`` and refuses, naming
it, a device this machine does not have or bf16 where the device cannot compute it.
"""

from __future__ import annotations

import torch


class DeviceError(ValueError):
    """A device (or a dtype on it) this machine cannot provide; the message names it."""


def check_device(name: str | torch.device, *, bf16: bool = False, default_index: int = 0) -> torch.device:
    """The device ``name``, checked (``cuda`` alone is ``cuda:default_index``); DeviceError otherwise."""
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise DeviceError(f"device={name!r} is not a device name ({e}); use cpu, cuda or cuda:N") from e
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise DeviceError(f"device={name!r}: facevox runs on cpu or cuda")
    if not torch.cuda.is_available():
        raise DeviceError(f"device={name!r}, but torch sees no CUDA device here: use device=cpu")
    if dev.index is None:
        dev = torch.device("cuda", default_index)
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise DeviceError(f"device={dev}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if bf16 and not torch.cuda.is_bf16_supported():
        raise DeviceError(
            f"bfloat16 on {dev}: {torch.cuda.get_device_name(dev)} cannot compute bf16; use float32"
        )
    return dev
