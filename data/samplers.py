"""Pixel sampling: random training batches and full-image chunks (one image: ``PixelSampler``; every
training view of a capture: ``PixelBank``).

The pixels stay on the CPU (pinned when CUDA is present); only each batch is moved to the device.
Pixel centres map to the unit square: ``u = (x + 0.5) / W`` (right), ``v = (y + 0.5) / H`` (down);
``PixelBank`` returns them in pixel units (``x + 0.5``, ``y + 0.5``), as the ray generators take them.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from fieldforge.data.captures.capture import Capture


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


@dataclass
class PixelBank:
    """All training pixels, flattened (CPU, pinned for CUDA): colours plus the frame of each pixel."""

    colors: Tensor
    """``(N, c)`` stored values (uint8 or float)."""
    offsets: Tensor
    """``(F + 1,)`` start of each frame's pixels."""
    frames: Tensor
    """``(F,)`` capture frame index of each bank frame."""
    widths: Tensor
    valid: Tensor | None
    """Indices of usable pixels (masks) or None for all."""

    @staticmethod
    def build(capture: Capture, indices: list[int], device: torch.device) -> "PixelBank":
        ims = [capture.images[i] for i in indices]
        channels = max(im.shape[-1] for im in ims)
        flat = []
        for im in ims:
            if im.shape[-1] < channels:  # an RGB frame among RGBA ones: opaque
                alpha = torch.full((*im.shape[:2], 1), 255 if im.dtype == torch.uint8 else 1.0, dtype=im.dtype)
                im = torch.cat([im, alpha], dim=-1)
            flat.append(im.reshape(-1, channels))
        dtype = torch.uint8 if all(f.dtype == torch.uint8 for f in flat) else torch.float32
        colors = torch.cat([f if f.dtype == dtype else (f.float() / 255.0 if f.dtype == torch.uint8 else f) for f in flat])
        sizes = torch.tensor([im.shape[0] * im.shape[1] for im in ims])
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(sizes, 0)])
        valid = None
        if capture.masks is not None:
            parts = []
            for k, i in enumerate(indices):
                m = capture.masks[i]
                local = torch.arange(int(sizes[k])) if m is None else torch.nonzero(m.reshape(-1)).squeeze(-1)
                parts.append(local + offsets[k])
            valid = torch.cat(parts)
        if device.type == "cuda":
            colors = colors.pin_memory()
        widths = torch.tensor([im.shape[1] for im in ims])
        return PixelBank(colors, offsets, torch.tensor(indices), widths, valid)

    @property
    def n_pixels(self) -> int:
        return int(self.valid.shape[0]) if self.valid is not None else int(self.offsets[-1])

    def sample(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """``(frame index (n,), pixel centres (n, 2), colours (n, c) float)`` of random pixels."""
        idx = torch.randint(0, self.n_pixels, (n,), generator=generator)
        if self.valid is not None:
            idx = self.valid[idx]
        k = torch.searchsorted(self.offsets, idx, right=True) - 1
        local = idx - self.offsets[k]
        w = self.widths[k]
        y = torch.div(local, w, rounding_mode="floor")
        x = local - y * w
        pix = torch.stack([x.float() + 0.5, y.float() + 0.5], dim=-1)
        c = self.colors[idx]
        c = c.float() / 255.0 if c.dtype == torch.uint8 else c.float()
        return self.frames[k], pix, c


__all__ = ["PixelBank", "PixelSampler", "pixel_coords"]
