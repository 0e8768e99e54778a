"""Real spherical harmonics of a view direction (instant-ngp / tiny-cuda-nn ``SphericalHarmonics``).

Input: unit directions mapped into the unit cube, ``u = (d + 1) / 2`` (the tcnn convention, so this is an
ordinary unit-cube encoding); the encoding maps back with ``d = 2u − 1`` and renormalizes.
Output: the ``degree²`` real orthonormal SH basis functions ``Y_l^m(d)`` for ``l < degree``, ordered by
``l`` then ``m = −l..l`` (Condon–Shortley phase included), so ``∫ Y_i Y_j dΩ = δ_ij``.
"""

from dataclasses import dataclass
from typing import ClassVar

import torch
from jaxtyping import Float
from torch import Tensor

from fieldforge.fields.encodings.base import Encoding, EncodingConfig, check_points


def spherical_harmonics(d: Float[Tensor, "n 3"], degree: int) -> Float[Tensor, "n k"]:
    """Real SH basis ``(n, degree²)`` of unit vectors, ``degree`` ∈ 1..4."""
    if not 1 <= degree <= 4:
        raise ValueError(f"spherical harmonics degree must be 1–4, got {degree}")
    x, y, z = d.unbind(-1)
    out = [torch.full_like(x, 0.28209479177387814)]
    if degree > 1:
        out += [-0.48860251190291987 * y, 0.48860251190291987 * z, -0.48860251190291987 * x]
    if degree > 2:
        xx, yy, zz = x * x, y * y, z * z
        out += [
            1.0925484305920792 * x * y,
            -1.0925484305920792 * y * z,
            0.94617469575755997 * zz - 0.31539156525251999,
            -1.0925484305920792 * x * z,
            0.54627421529603959 * (xx - yy),
        ]
    if degree > 3:
        out += [
            0.59004358992664352 * y * (-3.0 * xx + yy),
            2.8906114426405538 * x * y * z,
            0.45704579946446572 * y * (1.0 - 5.0 * zz),
            0.3731763325901154 * z * (5.0 * zz - 3.0),
            0.45704579946446572 * x * (1.0 - 5.0 * zz),
            1.4453057213202769 * z * (xx - yy),
            0.59004358992664352 * x * (-xx + 3.0 * yy),
        ]
    return torch.stack(out, dim=-1)


class SphericalHarmonicsEncoding(Encoding):
    def __init__(self, in_dim: int, config: "SphericalHarmonicsEncodingConfig") -> None:
        if in_dim != 3:
            raise ValueError(f"spherical harmonics encode 3-D directions, got in_dim={in_dim}")
        super().__init__(in_dim)
        self.config = config

    @property
    def out_dim(self) -> int:
        return self.config.degree**2

    def forward(self, x: Float[Tensor, "n 3"]) -> Float[Tensor, "n k"]:
        check_points(x, 3)
        d = x * 2.0 - 1.0
        d = d / d.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        return spherical_harmonics(d, self.config.degree)


@dataclass(frozen=True)
class SphericalHarmonicsEncodingConfig(EncodingConfig):
    """Real spherical harmonics of view directions (instant-ngp's direction encoding)."""

    cli_name: ClassVar[str | None] = None

    degree: int = 4
    """Number of bands: degree² outputs (4 → 16, instant-ngp's setting)."""

    def setup(self, in_dim: int) -> SphericalHarmonicsEncoding:
        return SphericalHarmonicsEncoding(in_dim, self)
