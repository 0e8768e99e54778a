"""``FieldOutputs``: the batched tensor dataclass every field query returns.

Shape convention (fixed once): vector quantities are ``(n, c)``; scalar quantities (density, sdf,
occupancy logit) are ``(n,)`` without a trailing 1.
"""

from dataclasses import dataclass, fields, replace
from collections.abc import Callable

import torch
from torch import Tensor


@dataclass
class FieldOutputs:
    values: Tensor | None = None
    """Generic head output ``(n, c)`` (image fields: the colour in the fitted space)."""
    rgb: Tensor | None = None
    """Colour ``(n, 3)`` in ``[0,1]``."""
    density: Tensor | None = None
    """Volume density σ ``(n,)`` (≥ 0)."""
    density_raw: Tensor | None = None
    """Density before its activation ``(n,)`` (distillation targets)."""
    sdf: Tensor | None = None
    """Signed distance ``(n,)`` in the field's world units (negative inside)."""
    occupancy_logit: Tensor | None = None
    """Occupancy logit ``(n,)`` (sigmoid → probability of inside)."""
    features: Tensor | None = None
    """Intermediate feature vector ``(n, f)`` where the representation has one."""

    def _map(self, fn: Callable[[Tensor], Tensor]) -> "FieldOutputs":
        return replace(self, **{f.name: fn(v) for f in fields(self) if (v := getattr(self, f.name)) is not None})

    def to(self, *args, **kwargs) -> "FieldOutputs":
        return self._map(lambda t: t.to(*args, **kwargs))

    def detach(self) -> "FieldOutputs":
        return self._map(lambda t: t.detach())

    def __getitem__(self, idx) -> "FieldOutputs":
        return self._map(lambda t: t[idx])

    def present(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]

    @staticmethod
    def cat(parts: list["FieldOutputs"]) -> "FieldOutputs":
        """Concatenate chunked query results along the batch dimension."""
        names = parts[0].present()
        return FieldOutputs(**{n: torch.cat([getattr(p, n) for p in parts], dim=0) for n in names})
