"""Frames of a video for structure from motion: evenly spaced, the sharpest of each neighbourhood.

The video is decoded once with imageio-ffmpeg (its own ffmpeg binary). Its frames are split into
``max_frames`` equal runs of consecutive frames; of each run the frame with the highest variance of the
Laplacian (the usual focus / motion-blur measure) is kept and written as a JPEG.
"""

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from fieldforge.data.errors import InputError
from jaxtyping import Float, UInt8

Track = Callable[..., Iterable]
"""``track(items, description, total=None)``: yields the items while showing progress."""


def laplacian_variance(rgb: UInt8[np.ndarray, "h w 3"] | Float[np.ndarray, "h w 3"]) -> float:
    """Sharpness of an image: variance of the 4-neighbour Laplacian of its luma (higher = sharper)."""
    grey = np.asarray(rgb, dtype=np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    lap = 4 * grey[1:-1, 1:-1] - grey[:-2, 1:-1] - grey[2:, 1:-1] - grey[1:-1, :-2] - grey[1:-1, 2:]
    return float(lap.var())


def video_frame_count(video: Path) -> int:
    """Number of decodable frames (decodes the whole stream; raises ``InputError`` if it cannot)."""
    import imageio_ffmpeg

    try:
        n, _ = imageio_ffmpeg.count_frames_and_secs(str(video))
    except (RuntimeError, OSError, ValueError) as e:  # ffmpeg's own message: its last line says why
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        raise InputError(video, f"cannot decode the video ({lines[-1] if lines else type(e).__name__})") from None
    if n < 1:
        raise InputError(video, "the video has no frames that can be decoded")
    return int(n)


def extract_frames(video: Path, out_dir: Path, max_frames: int, downscale: int, track: Track) -> list[Path]:
    """Write up to ``max_frames`` frames of ``video`` into ``out_dir`` (``frame_00000.jpg`` …, in time
    order), downscaled by the integer ``downscale``; returns their paths."""
    import imageio_ffmpeg
    from PIL import Image

    total = video_frame_count(video)
    k = min(max_frames, total)
    out_dir.mkdir(parents=True, exist_ok=True)
    reader = imageio_ffmpeg.read_frames(str(video), pix_fmt="rgb24")
    try:
        meta = next(reader)
        w, h = meta["size"]
    except (RuntimeError, OSError, ValueError, StopIteration, KeyError) as e:
        raise InputError(video, f"cannot decode the video ({type(e).__name__}: {e})") from None
    written: list[Path] = []
    current_bin, best, best_score = -1, None, -1.0

    def flush() -> None:
        if best is None:
            return
        img = Image.fromarray(best)
        if downscale > 1:
            img = img.resize((w // downscale, h // downscale), Image.Resampling.BOX)
        path = out_dir / f"frame_{len(written):05d}.jpg"
        img.save(path, quality=95)
        written.append(path)

    try:
        for i, raw in enumerate(track(reader, "video frames", total=total)):
            frame = np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3)
            b = min(k - 1, i * k // total)
            if b != current_bin:
                flush()
                current_bin, best, best_score = b, None, -1.0
            score = laplacian_variance(frame[::2, ::2])  # half resolution: a stable and cheaper measure
            if score > best_score:
                best, best_score = frame.copy(), score
        flush()
    except (RuntimeError, OSError, ValueError) as e:
        raise InputError(video, f"decoding failed after {len(written)} frames ({type(e).__name__}: {e})") from None
    finally:
        reader.close()
    return written


__all__ = ["extract_frames", "laplacian_variance", "video_frame_count"]
