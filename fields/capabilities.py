"""Capabilities the viewer, exporter and distiller test for (never ``isinstance`` on a concrete class).

Every capability is declared by a class, never bound per instance, so a check holds after
``copy.deepcopy`` and pickling; test the module inside a DDP / ``torch.compile`` wrapper
(``fieldforge.fields.wrapping.unwrap``). Which classes have which:

- ``SDFField``: ``HasSDF``;
- ``RadianceField`` and ``NerfModel`` (``fields.radiance_model``): ``HasDensity``, ``Renderable``;
- every field and ``NerfModel``: ``Queryable``;
- ``PINs``: ``HasLevels``; ``SAPEEncoding``: ``HasProgressMap``.
"""

from typing import Protocol, runtime_checkable

from torch import Tensor

from fieldforge.fields.outputs import FieldOutputs


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


@runtime_checkable
class HasLevels(Protocol):
    """A component with a level-of-detail hierarchy that can be truncated (PINs)."""

    @property
    def n_levels(self) -> int: ...

    def set_level(self, level: int | None) -> None:
        """Evaluate only levels ``1..level`` (``None``: all)."""
        ...


@runtime_checkable
class HasProgressMap(Protocol):
    def progress_map(self) -> Tensor:
        """Per-cell fraction of unmasked frequency blocks in ``[0,1]``, shape ``(res,)*d`` (axis a = coordinate a) (SAPE)."""
        ...
