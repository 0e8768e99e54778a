"""Pixel sampling: random training batches and full-image chunks.

The image stays on the CPU (pinned when CUDA is present); only each batch is moved to the device.
Pixel centres map to the unit square: ``u = (x + 0.5) / W`` (right), ``v = (y + 0.5) / H`` (down).
"""

from collections.abc import Iterator

import torch
from jaxtyping import Float
from torch import Tensor


def pixel_coords(height: int, width: int, scale: float = 1.0) -> Float[Tensor, "n 2"]:
    """Unit-square centres of an ``(height·scale) × (width·scale)`` grid, row-major, as ``(u, v)``."""
    h, w = max(1, round(height * scale)), max(1, round(width * scale))
    ys = (torch.arange(h, dtype=torch.float32) + 0.5) / h
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) / w
    vv, uu = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([uu.reshape(-1), vv.reshape(-1)], dim=-1)


class PixelSampler:
    """Random pixel batches from one ``(h, w, c)`` image; its generator state is checkpointable."""

    def __init__(self, image: Float[Tensor, "h w c"], batch_size: int, device: torch.device | str = "cpu", seed: int = 0) -> None:
        self.height, self.width, self.channels = image.shape
        flat = image.reshape(-1, self.channels).float().contiguous()
        self.device = torch.device(device)
        self.pixels = flat.pin_memory() if self.device.type == "cuda" else flat
        self.batch_size = min(batch_size, flat.shape[0])
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def n_pixels(self) -> int:
        return self.pixels.shape[0]

    def coords_of(self, index: Tensor) -> Float[Tensor, "n 2"]:
        y = torch.div(index, self.width, rounding_mode="floor")
        x = index - y * self.width
        return torch.stack([(x.float() + 0.5) / self.width, (y.float() + 0.5) / self.height], dim=-1)

    def sample(self) -> tuple[Float[Tensor, "n 2"], Float[Tensor, "n c"]]:
        """A batch of ``(coords, targets)`` on the device, drawn uniformly with replacement."""
        index = torch.randint(0, self.n_pixels, (self.batch_size,), generator=self.generator)
        coords, target = self.coords_of(index), self.pixels[index]
        nb = self.device.type == "cuda"
        return coords.to(self.device, non_blocking=nb), target.to(self.device, non_blocking=nb)

    def chunks(self, chunk: int = 65536) -> Iterator[tuple[Float[Tensor, "n 2"], Float[Tensor, "n c"]]]:
        """Every pixel once, row-major, in chunks (for evaluation)."""
        for start in range(0, self.n_pixels, chunk):
            index = torch.arange(start, min(start + chunk, self.n_pixels))
            yield self.coords_of(index).to(self.device), self.pixels[index].to(self.device)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
