"""Read and write images as linear float ``[0,1]`` tensors ``(h, w, c)``.

Transfer functions (``srgb_to_linear`` / ``linear_to_srgb``, defined with the encoders in :mod:`fieldforge.data.formats`):
8/16-bit PNG, JPEG and integer TIFF are display-referred and sRGB-encoded, so they are decoded to linear light on read.
EXR and float TIFF are scene-referred linear and are read as-is (values above 1 are kept: HDR). Grayscale stays
1 channel, RGBA keeps alpha (never sRGB-decoded).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import imageio.v3 as iio
import numpy as np
import torch
from jaxtyping import Float
from PIL import Image
from torch import Tensor

from fieldforge.data.errors import InputError, require_file
from fieldforge.data.formats import encode_exr, encode_png, linear_to_srgb, srgb_to_linear
from fieldforge.data.memory import require_memory

Transfer = Literal["srgb", "linear"]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".exr")
DEFAULT_MAX_PIXELS = 64_000_000


@dataclass
class ImageData:
    """An image in linear light. ``transfer`` says how the file stored it (and how to write it back)."""

    pixels: Float[Tensor, "h w c"]
    """Linear values, float32; alpha (if any) is the last channel and is linear by definition."""
    path: Path | None
    transfer: Transfer
    has_alpha: bool = False

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def channels(self) -> int:
        return self.pixels.shape[2]

    def encoded(self) -> Float[Tensor, "h w c"]:
        """Values as the file stores them (sRGB-encoded for display-referred formats): what image-fitting
        papers fit and score, and what ``fieldforge train image`` fits."""
        return encode(self.pixels, self.transfer, self.has_alpha)


def encode(linear: Tensor, transfer: Transfer, has_alpha: bool) -> Tensor:
    if transfer == "linear":
        return linear
    colour = linear[..., :-1] if has_alpha else linear
    out = linear_to_srgb(colour)
    return torch.cat([out, linear[..., -1:]], dim=-1) if has_alpha else out


def decode(stored: Tensor, transfer: Transfer, has_alpha: bool) -> Tensor:
    if transfer == "linear":
        return stored
    colour = stored[..., :-1] if has_alpha else stored
    out = srgb_to_linear(colour)
    return torch.cat([out, stored[..., -1:]], dim=-1) if has_alpha else out


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) read from the header only, so huge files are rejected before decoding."""
    if path.suffix.lower() == ".exr":
        import OpenEXR

        try:
            with OpenEXR.File(str(path), header_only=True) as f:
                (x0, y0), (x1, y1) = f.header()["dataWindow"]
        except Exception as e:  # the library raises bare RuntimeErrors for corrupt files
            raise InputError(path, f"not a readable OpenEXR file ({e})") from None
        return int(x1 - x0 + 1), int(y1 - y0 + 1)
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                shape = tif.pages[0].shape
                axes = tif.pages[0].axes
        except Exception as e:
            raise InputError(path, f"not a readable TIFF file ({type(e).__name__}: {e})") from None
        return int(shape[axes.index("X")]), int(shape[axes.index("Y")])
    Image.MAX_IMAGE_PIXELS = None  # we enforce our own budget below
    try:
        with Image.open(path) as im:
            return im.size
    except Exception as e:
        raise InputError(path, f"not a readable image ({type(e).__name__}: {e})") from None


def _read_exr(path: Path) -> np.ndarray:
    import OpenEXR

    with OpenEXR.File(str(path)) as f:
        channels = {k: v.pixels for k, v in f.channels().items()}
    if "RGBA" in channels:
        return channels["RGBA"]
    if "RGB" in channels:
        return channels["RGB"]
    names = [n for n in ("R", "G", "B", "A") if n in channels]
    if not names:
        if len(channels) == 1:
            return next(iter(channels.values()))
        raise InputError(path, f"EXR has no R/G/B/A channels (found {sorted(channels)})")
    return np.stack([channels[n] for n in names], axis=-1)


def _to_float(array: np.ndarray, path: Path) -> tuple[np.ndarray, Transfer]:
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0, "srgb"
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0, "srgb"
    if array.dtype == bool:
        return array.astype(np.float32), "linear"
    if np.issubdtype(array.dtype, np.floating):
        return array.astype(np.float32), "linear"
    if np.issubdtype(array.dtype, np.integer):
        info = np.iinfo(array.dtype)
        return array.astype(np.float64).clip(0, info.max).astype(np.float32) / float(info.max), "srgb"
    raise InputError(path, f"unsupported pixel type {array.dtype}")


def check_decodable(path: Path, width: int, height: int) -> None:
    """Colour models we would misread are refused (CMYK's K is not alpha), and the decode must fit in RAM."""
    if path.suffix.lower() not in (".exr", ".tif", ".tiff"):
        with Image.open(path) as im:
            mode = im.mode
        if mode in ("CMYK", "LAB", "YCbCr"):
            raise InputError(path, f"{mode} colour is not supported; convert the image to RGB (e.g. magick in.jpg -colorspace sRGB out.png)")
    # decoded (≤ 8 bytes/channel) + float32 copy + linear copy, 4 channels at most
    require_memory(width * height * 4 * (8 + 4 + 4), f"decoding the {width}×{height} image", "shrink the file first (e.g. magick in.png -resize 50% out.png)", path=path)


def load_image(
    path: str | Path,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    downscale: int = 1,
    fit_budget: bool = False,
) -> ImageData:
    """Read an image file into linear float ``(h, w, c)``.

    Args:
        max_pixels: budget on ``h·w`` after ``downscale``; larger images raise ``InputError`` unless
            ``fit_budget`` is set, which downscales by the smallest integer factor that fits.
        downscale: integer box-filter downscale factor applied after reading.
    """
    p = require_file(path, "image file")
    if p.suffix.lower() not in IMAGE_SUFFIXES:
        raise InputError(p, f"unsupported image format {p.suffix or '(no extension)'}; expected one of {', '.join(IMAGE_SUFFIXES)}")
    if downscale < 1:
        raise InputError(p, f"downscale must be ≥ 1, got {downscale}")
    w, h = _image_size(p)
    if w == 0 or h == 0:
        raise InputError(p, f"image has zero size ({w}×{h})")
    if w // downscale == 0 or h // downscale == 0:
        raise InputError(p, f"--downscale {downscale} is larger than the {w}×{h} image (at most {min(w, h)})")
    factor = downscale
    while (w // factor) * (h // factor) > max_pixels:
        if not fit_budget:
            raise InputError(p, f"{w}×{h} = {w * h:,} pixels exceeds the budget of {max_pixels:,} (--max-pixels); pass --downscale or --fit-budget")
        factor += 1
    check_decodable(p, w, h)
    try:
        array = _read_exr(p) if p.suffix.lower() == ".exr" else iio.imread(p)
    except InputError:
        raise
    except Exception as e:
        raise InputError(p, f"could not decode image ({type(e).__name__}: {e})") from None
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 2, 3, 4):
        raise InputError(p, f"unsupported image layout {array.shape} (expected h×w, h×w×3 or h×w×4; multi-page files are not supported)")
    values, transfer = _to_float(array, p)
    if not np.isfinite(values).all():
        raise InputError(p, "image contains NaN or infinite values")
    has_alpha = values.shape[-1] in (2, 4)
    stored = torch.from_numpy(np.ascontiguousarray(values))
    if factor > 1:
        stored = box_downscale(stored, factor)
    return ImageData(pixels=decode(stored, transfer, has_alpha), path=p, transfer=transfer, has_alpha=has_alpha)


def box_downscale(image: Float[Tensor, "h w c"], factor: int) -> Float[Tensor, "h2 w2 c"]:
    """Average ``factor × factor`` blocks (crops the remainder)."""
    h, w = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    x = image[:h, :w].permute(2, 0, 1)[None]
    return torch.nn.functional.avg_pool2d(x, factor)[0].permute(1, 2, 0).contiguous()


def encode_image(linear: Float[Tensor, "h w c"], fmt: Literal["png", "exr"], has_alpha: bool = False) -> bytes:
    """Serialize a linear image: PNG is 8-bit sRGB-encoded (alpha stays linear), EXR is float32 linear
    (HDR kept). The transfer-function wrapper over :func:`fieldforge.data.formats.encode_png` /
    :func:`~fieldforge.data.formats.encode_exr`."""
    if fmt == "png":
        return encode_png(encode(linear, "srgb", has_alpha))
    if fmt == "exr":
        return encode_exr(linear)
    raise ValueError(f"unknown image format {fmt!r}")
