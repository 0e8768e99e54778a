"""Will it fit? Estimate before allocating: available CPU RAM (psutil) or free GPU memory, and one clear
``InputError`` naming the option that shrinks the job instead of an allocation traceback."""

import torch

from fieldforge.data.errors import InputError

HEADROOM = 0.8
"""Fraction of the available memory a single allocation plan may use."""


def available_bytes(device: torch.device | str = "cpu") -> int:
    """Free memory on ``device``: GPU ``mem_get_info``, else available RAM (psutil, /proc/meminfo as fallback)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # psutil comes with the viewer/tensorboard stack; /proc/meminfo otherwise (Linux)
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) * 1024


def require_memory(nbytes: int | float, what: str, hint: str, device: torch.device | str = "cpu", path: object = None) -> None:
    """``InputError`` if ``nbytes`` would not fit in ``HEADROOM`` of the free memory of ``device``."""
    free = available_bytes(device)
    if nbytes > HEADROOM * free:
        where = "GPU" if torch.device(device).type == "cuda" else "RAM"
        raise InputError(path, f"{what} needs about {_size(nbytes)} but only {_size(free)} of {where} is free; {hint}")


def _size(n: int | float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1024 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PB"
