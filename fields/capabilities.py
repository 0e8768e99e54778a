"""Capabilities the viewer, exporter and distiller test for (never ``isinstance`` on a concrete class)."""

from typing import Protocol, runtime_checkable

from torch import Tensor

from fields.outputs import FieldOutputs


@runtime_checkable
class Queryable(Protocol):
    """Teacher query: ``field(points, directions) → FieldOutputs`` for world points ``(n, d)``."""

    def __call__(self, points: Tensor, directions: Tensor | None = None) -> FieldOutputs: ...


@runtime_checkable
class HasDensity(Protocol):
    def density(self, points: Tensor) -> Tensor:
        """Volume density ``(n,)`` at world points ``(n, 3)``."""
        ...


@runtime_checkable
class HasSDF(Protocol):
    def signed_distance(self, points: Tensor) -> Tensor:
        """Signed distance ``(n,)`` at world points ``(n, 3)``."""
        ...


@runtime_checkable
class Renderable(Protocol):
    def rgb_density(self, points: Tensor, directions: Tensor) -> tuple[Tensor, Tensor]:
        """Colour ``(n, 3)`` and density ``(n,)`` for volume rendering."""
        ...
