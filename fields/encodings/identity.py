"""Identity encoding: the raw coordinates (the spectral-bias baseline)."""

from dataclasses import dataclass
from typing import ClassVar

from jaxtyping import Float
from torch import Tensor

from fieldforge.fields.encodings.base import Encoding, EncodingConfig, unit_to_signed


class IdentityEncoding(Encoding):
    """Returns ``2x − 1`` so the network sees centred coordinates in ``[-1,1]``."""

    def __init__(self, in_dim: int, config: "IdentityEncodingConfig") -> None:
        super().__init__(in_dim)
        self.config = config

    @property
    def out_dim(self) -> int:
        return self.in_dim

    def forward(self, x: Float[Tensor, "n d"]) -> Float[Tensor, "n d"]:
        return unit_to_signed(x) if self.config.centre else x


@dataclass(frozen=True)
class IdentityEncodingConfig(EncodingConfig):
    """No encoding: the MLP sees the coordinates themselves."""

    cli_name: ClassVar[str | None] = "identity"

    centre: bool = True
    """Map [0,1] to [-1,1] before the network."""

    def setup(self, in_dim: int) -> IdentityEncoding:
        return IdentityEncoding(in_dim, self)
