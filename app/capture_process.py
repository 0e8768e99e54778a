"""``fieldforge capture process``: photos or a video → a posed nerfstudio capture, with pycolmap on the CPU.

Stages (each with a progress bar): images (copied, or frames extracted from the video; optional integer
downscale), SIFT feature extraction (one shared camera), matching (exhaustive pairs for photos, each frame
with its next ones for video), incremental mapping; the model with the most registered images is kept.
Written: ``images/``, ``sparse/0/`` (the COLMAP model), ``points.ply`` (its 3-D points, 8-bit sRGB
colours) and ``transforms.json`` (intrinsics and distortion; camera-to-world poses converted from COLMAP's
OpenCV world-to-camera convention to OpenGL, in COLMAP's world frame, as ``data/captures/colmap.py``
reads them). Everything is built in a hidden folder beside the output and renamed at the end.
"""

import json
import os
import shutil
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Self, TypeVar

import numpy as np
from fieldforge.data.captures.capture import CaptureWarning
from fieldforge.data.captures.unposed import is_video, unposed_images
from fieldforge.data.errors import InputError

T = TypeVar("T")

MIN_IMAGES = 3
"""Fewest images (given and registered) a capture is made of."""
SEQUENTIAL_OVERLAP = 10
"""Sequential matching: each frame is matched with its next 10 frames (and those 2^k ahead, for loops)."""


@dataclass(frozen=True)
class ProcessOptions:
    """Compute camera poses for a folder of photos or a video with pycolmap (feature extraction, matching,
    incremental mapping; CPU) and write a nerfstudio capture that fieldforge train nerf --data reads as is."""

    input: Path
    """A folder of photos (.jpg/.png/.tif/…, all the same size) or a video (.mp4/.mov/.avi/.mkv/.webm)."""
    output: Path
    """Capture folder to create (transforms.json, images/, sparse/0/, points.ply)."""
    max_frames: int = 200
    """Video: frames to extract (evenly spaced, the sharpest of each stretch). Photos: all are used."""
    matcher: Literal["auto", "exhaustive", "sequential"] = "auto"
    """Which image pairs to match: 'auto' = sequential for a video, exhaustive for photos (every pair: the time
    grows with the square of the count; for hundreds of photos taken in order, sequential is much faster)."""
    camera_model: Literal["SIMPLE_RADIAL", "OPENCV", "RADIAL", "PINHOLE", "SIMPLE_PINHOLE"] = "SIMPLE_RADIAL"
    """COLMAP camera model shared by all images: SIMPLE_RADIAL (one focal length, one radial term) suits most
    photos; OPENCV for wide-angle or phone lenses; PINHOLE for undistorted images."""
    downscale: int = 1
    """Integer factor the images are box-downscaled by before everything (the capture holds them so)."""
    max_features: int = 8192
    """SIFT features per image."""
    overwrite: bool = False
    """Replace an existing, non-empty output folder."""
    seed: int = 0
    """Random seed of the mapper (multithreaded matching and bundle adjustment may still differ slightly between runs)."""
    progress: bool = True
    """Show progress bars."""


@dataclass
class ProcessResult:
    """What ``process_capture`` did."""

    output: Path
    given: int
    """Images given (photos, or frames extracted from the video)."""
    registered: int
    unregistered: list[str]
    mean_reprojection_error: float
    """Pixels, over all observations of the kept model."""
    points: int
    matcher: str
    camera: dict
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time per stage: images, features, matching, mapping, writing."""

    def summary_line(self) -> str:
        stages = ", ".join(f"{k} {v:.0f} s" for k, v in self.seconds.items())
        return (
            f"capture: {self.registered}/{self.given} images registered, mean reprojection error "
            f"{self.mean_reprojection_error:.2f} px, {self.points:,} points ({self.matcher} matching; {stages}) → "
            f"{self.output / 'transforms.json'}"
        )


class Progress:
    """Rich progress bars on stderr, one per stage (a no-op when disabled)."""

    def __init__(self, enabled: bool) -> None:
        from fieldforge.app.callbacks import console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        from rich.progress import Progress as RichProgress

        columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
        self.rich = RichProgress(*columns, console=console, disable=not enabled, transient=False)

    def __enter__(self) -> Self:
        self.rich.start()
        return self

    def __exit__(self, *exc) -> None:
        self.rich.stop()

    def track(self, items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
        bar = self.rich.add_task(description, total=total if total is not None else len(items))  # type: ignore[arg-type]
        for item in items:
            yield item
            self.rich.advance(bar)

    def bar(self, description: str, total: int):
        return self.rich.add_task(description, total=total)

    def advance(self, bar, n: int = 1) -> None:
        self.rich.advance(bar, n)

    def set(self, bar, completed: int) -> None:
        self.rich.update(bar, completed=completed)


@contextmanager
def quiet_colmap() -> Iterator[None]:
    """COLMAP logs every step to stderr; keep only fatal messages while it runs (our summary says the rest)."""
    import pycolmap

    before = pycolmap.logging.minloglevel
    pycolmap.logging.minloglevel = 3
    try:
        yield
    finally:
        pycolmap.logging.minloglevel = before


# --- checks --------------------------------------------------------------------------------------------


def check_options(o: ProcessOptions) -> None:
    if not o.input.exists():
        raise InputError(o.input, "--input does not exist (give a folder of photos or a video file)")
    if o.input.is_file() and not is_video(o.input):
        raise InputError(o.input, "--input is neither a folder of photos nor a video (.mp4, .mov, .m4v, .avi, .mkv, .webm)")
    if o.downscale < 1:
        raise InputError(None, f"--downscale must be an integer ≥ 1, got {o.downscale}")
    if o.max_frames < MIN_IMAGES:
        raise InputError(None, f"--max-frames must be ≥ {MIN_IMAGES}, got {o.max_frames}")
    if o.max_features < 64:
        raise InputError(None, f"--max-features must be ≥ 64, got {o.max_features}")
    if o.output.exists():
        if not o.output.is_dir():
            raise InputError(o.output, "--output exists and is not a folder")
        if any(o.output.iterdir()) and not o.overwrite:
            raise InputError(o.output, "--output exists and is not empty (choose another folder, or --overwrite True)")
    if o.input.is_dir() and o.output.resolve() == o.input.resolve():
        raise InputError(o.output, "--output must differ from --input")


def check_photos(folder: Path) -> tuple[list[Path], tuple[int, int]]:
    """The photos of ``folder`` and their common size ``(w, h)``; ``InputError`` naming the file otherwise."""
    from PIL import Image, UnidentifiedImageError

    photos = unposed_images(folder)
    if len(photos) < MIN_IMAGES:
        raise InputError(folder, f"too few images: found {len(photos)}, structure from motion needs at least {MIN_IMAGES} overlapping photos")
    sizes: dict[tuple[int, int], Path] = {}
    for p in photos:
        try:
            with Image.open(p) as im:
                size = im.size
        except (UnidentifiedImageError, OSError) as e:
            raise InputError(p, f"not a readable image ({type(e).__name__})") from None
        sizes.setdefault(size, p)
        if len(sizes) > 1:
            (s0, p0), (s1, p1) = list(sizes.items())[:2]
            raise InputError(
                folder, f"mixed image sizes: {p0.name} is {s0[0]}×{s0[1]} but {p1.name} is {s1[0]}×{s1[1]} "
                "(one camera is assumed; resize or split the photos)",
            )
    return photos, next(iter(sizes))


def copy_photos(photos: Sequence[Path], size: tuple[int, int], out_dir: Path, downscale: int, progress: Progress) -> list[Path]:
    """Copy (or box-downscale) the photos into ``out_dir``, keeping their names and formats."""
    from PIL import Image

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for p in progress.track(photos, "images"):
        target = out_dir / p.name
        if downscale == 1:
            shutil.copyfile(p, target)
        else:
            with Image.open(p) as im:
                small = im.resize((size[0] // downscale, size[1] // downscale), Image.Resampling.BOX)
                small.save(target, **({"quality": 95} if p.suffix.lower() in (".jpg", ".jpeg") else {}))
        written.append(target)
    return written


# --- pycolmap stages -------------------------------------------------------------------------------------


def _chunks(items: Sequence[T], n: int, min_size: int) -> list[Sequence[T]]:
    """At most ``n`` consecutive chunks of at least ``min_size`` items (each pycolmap call costs ~0.3 s)."""
    size = max(min_size, -(-len(items) // n))
    return [items[i : i + size] for i in range(0, len(items), size)]


def extract_features(database: Path, image_dir: Path, names: list[str], o: ProcessOptions, progress: Progress) -> None:
    """SIFT features of every image into ``database``; all images share one camera of ``o.camera_model``."""
    import pycolmap

    extraction = pycolmap.FeatureExtractionOptions()
    extraction.sift.max_num_features = o.max_features
    bar = progress.bar("features", len(names))
    for k, chunk in enumerate(_chunks(names, 20, 8)):
        reader = pycolmap.ImageReaderOptions()
        reader.camera_model = o.camera_model
        if k > 0:
            reader.existing_camera_id = 1  # the camera the first chunk created: one camera for all
        pycolmap.extract_features(database, image_dir, image_names=list(chunk), camera_mode=pycolmap.CameraMode.SINGLE,
                                  reader_options=reader, extraction_options=extraction, device=pycolmap.Device.cpu)
        progress.advance(bar, len(chunk))


def image_pairs(names: list[str], matcher: str) -> list[tuple[str, str]]:
    """Pairs to match: all of them (exhaustive), or each image with its next ``SEQUENTIAL_OVERLAP`` and
    those ``2^k`` ahead (sequential, as COLMAP's quadratic overlap)."""
    n = len(names)
    if matcher == "exhaustive":
        return [(names[i], names[j]) for i in range(n) for j in range(i + 1, n)]
    pairs = set()
    for i in range(n):
        for d in range(1, SEQUENTIAL_OVERLAP + 1):
            if i + d < n:
                pairs.add((i, i + d))
        d = 2 ** int(np.ceil(np.log2(SEQUENTIAL_OVERLAP + 1)))
        while i + d < n:
            pairs.add((i, i + d))
            d *= 2
    return [(names[i], names[j]) for i, j in sorted(pairs)]


def match_features(database: Path, work: Path, pairs: list[tuple[str, str]], progress: Progress) -> None:
    """Match and geometrically verify ``pairs`` (SIFT, mutual nearest neighbours + ratio test)."""
    import pycolmap

    bar = progress.bar("matching", len(pairs))
    pair_file = work / "pairs.txt"
    for chunk in _chunks(pairs, 25, 150):
        pair_file.write_text("".join(f"{a} {b}\n" for a, b in chunk))
        pycolmap.match_image_pairs(database, pairing_options=pycolmap.ImportedPairingOptions(match_list_path=str(pair_file)),
                                   device=pycolmap.Device.cpu)
        progress.advance(bar, len(chunk))


def reconstruct(database: Path, image_dir: Path, work: Path, n_images: int, o: ProcessOptions, progress: Progress):
    """Incremental mapping; the model that registered the most images (``None`` if there is none)."""
    import pycolmap

    options = pycolmap.IncrementalPipelineOptions()
    options.random_seed = o.seed
    options.mapper.random_seed = o.seed
    options.triangulation.random_seed = o.seed
    options.min_model_size = MIN_IMAGES
    bar = progress.bar("mapping", n_images)
    count = [0]

    def registered(n: int = 1) -> None:
        count[0] = min(n_images, count[0] + n)
        progress.set(bar, count[0])

    models = pycolmap.incremental_mapping(database, image_dir, work / "models", options,
                                          initial_image_pair_callback=lambda: registered(2), next_image_callback=registered)
    if not models:
        return None
    best = max(models.values(), key=lambda r: r.num_reg_images())
    progress.set(bar, best.num_reg_images())
    return best


# --- output ----------------------------------------------------------------------------------------------


def transforms_of(rec) -> dict:
    """nerfstudio ``transforms.json`` of a pycolmap reconstruction with one camera (poses: OpenGL camera-to-world)."""
    from fieldforge.data.captures.colmap import OPENCV_TO_OPENGL, camera_intrinsics

    cam = rec.cameras[next(iter(rec.cameras))]
    (fx, fy, cx, cy), (k1, k2, k3, k4, p1, p2) = camera_intrinsics(cam, Path("sparse/0"))
    meta: dict = {"camera_model": "OPENCV" if any((k1, k2, k3, k4, p1, p2)) else "PINHOLE",
                  "fl_x": fx, "fl_y": fy, "cx": cx, "cy": cy, "w": int(cam.width), "h": int(cam.height),
                  "k1": k1, "k2": k2, "p1": p1, "p2": p2}  # fmt: skip
    frames = []
    for image_id in sorted(rec.images, key=lambda i: rec.images[i].name):
        img = rec.images[image_id]
        if not img.has_pose:
            continue
        w2c = np.eye(4)
        w2c[:3, :] = np.asarray(img.cam_from_world().matrix(), dtype=np.float64)
        c2w = np.linalg.inv(w2c) @ OPENCV_TO_OPENGL
        frames.append({"file_path": f"images/{img.name}", "transform_matrix": c2w.tolist(), "colmap_im_id": int(image_id)})
    meta["frames"] = frames
    return meta


def points_ply(rec) -> bytes | None:
    """The model's 3-D points with their colours as binary PLY (None if it has none)."""
    from fieldforge.data.formats import encode_ply

    if rec.num_points3D() == 0:
        return None
    pts = rec.points3D
    ids = sorted(pts.keys())
    xyz = np.stack([np.asarray(pts[i].xyz, dtype=np.float64) for i in ids])
    rgb = np.stack([np.asarray(pts[i].color, dtype=np.float64) for i in ids]) / 255.0
    return encode_ply(xyz, colours=rgb, colour_space="srgb")  # the stored 8-bit values, as they are


def write_capture(rec, tmp: Path) -> dict:
    (tmp / "sparse" / "0").mkdir(parents=True, exist_ok=True)
    rec.write(str(tmp / "sparse" / "0"))
    meta = transforms_of(rec)
    ply = points_ply(rec)
    if ply is not None:
        (tmp / "points.ply").write_bytes(ply)
        meta["ply_file_path"] = "points.ply"
    (tmp / "transforms.json").write_text(json.dumps(meta, indent=1))
    return meta


def _name_list(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_registration(where: Path, names: list[str], registered: set[str]) -> list[str]:
    """The names that did not register; ``InputError`` naming them if fewer than ``MIN_IMAGES`` did, a
    ``CaptureWarning`` naming them if fewer than half did."""
    missing = [n for n in names if n not in registered]
    if len(registered) < MIN_IMAGES:
        raise InputError(
            where, f"the images do not register: {len(registered)} of {len(names)} posed (not registered: {_name_list(missing)}); "
            "they need more overlap and texture (for a video, try a larger --max-frames)",
        )
    if len(registered) < len(names) / 2:
        warnings.warn(f"{where}: only {len(registered)} of {len(names)} images registered; not registered: {_name_list(missing, 20)}",
                      CaptureWarning, stacklevel=3)
    return missing


def process_capture(o: ProcessOptions) -> ProcessResult:
    """Run every stage into a hidden folder beside ``o.output`` and rename it there at the end."""
    check_options(o)
    video = is_video(o.input)
    photos, size = ([], (0, 0)) if video else check_photos(o.input)
    matcher = o.matcher if o.matcher != "auto" else ("sequential" if video else "exhaustive")
    out = o.output.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    seconds: dict[str, float] = {}
    try:
        with Progress(o.progress) as progress, quiet_colmap():
            t = time.perf_counter()
            image_dir, work = tmp / "images", tmp / ".work"
            work.mkdir(parents=True)
            if video:
                from fieldforge.app.capture_video import extract_frames

                images = extract_frames(o.input, image_dir, o.max_frames, o.downscale, progress.track)
                if len(images) < MIN_IMAGES:
                    raise InputError(o.input, f"too few frames: the video gave {len(images)}, structure from motion needs at least {MIN_IMAGES}")
            else:
                images = copy_photos(photos, size, image_dir, o.downscale, progress)
            names = [p.name for p in images]
            seconds["images"] = time.perf_counter() - t
            database = work / "database.db"
            t = time.perf_counter()
            extract_features(database, image_dir, names, o, progress)
            seconds["features"] = time.perf_counter() - t
            t = time.perf_counter()
            match_features(database, work, image_pairs(names, matcher), progress)
            seconds["matching"] = time.perf_counter() - t
            t = time.perf_counter()
            rec = reconstruct(database, image_dir, work, len(names), o, progress)
            seconds["mapping"] = time.perf_counter() - t
        registered = set() if rec is None else {rec.images[i].name for i in rec.reg_image_ids()}
        missing = check_registration(o.input, names, registered)
        t = time.perf_counter()
        meta = write_capture(rec, tmp)
        shutil.rmtree(work)
        if out.exists():  # empty, or --overwrite: swap it out only now that the new capture is complete
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
        seconds["writing"] = time.perf_counter() - t
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    camera = {k: meta[k] for k in ("camera_model", "fl_x", "fl_y", "cx", "cy", "w", "h", "k1", "k2", "p1", "p2")}
    return ProcessResult(out, len(names), len(registered), missing, float(rec.compute_mean_reprojection_error()),
                         int(rec.num_points3D()), matcher, camera, seconds)


__all__ = ["MIN_IMAGES", "ProcessOptions", "ProcessResult", "check_registration", "image_pairs", "process_argv", "process_capture"]


def process_argv(argv: list[str]) -> list[str]:
    """``train … --data PHOTOS_OR_VIDEO --process True``: pose the input first (into ``<name>-capture`` beside
    it, reused if already there) and point ``--data`` at the capture. Without ``--process`` (or for a
    posed capture) ``argv`` is returned without the option."""
    from fieldforge.app.argv import peek_option, pop_option
    from fieldforge.app.callbacks import console
    from fieldforge.data.captures.unposed import default_capture_dir, is_unposed

    argv, flag = pop_option(argv, "--process")
    if flag is None or flag.lower() in ("false", "0", "no"):
        return argv
    if flag.lower() not in ("true", "1", "yes"):
        raise InputError(None, f"--process must be True or False, got {flag!r}")
    data = peek_option(argv, "--data")
    if data is None or not is_unposed(Path(data)) or (Path(data) / "transforms.json").is_file():
        return argv  # already a capture: nothing to compute
    out = default_capture_dir(Path(data))
    if (out / "transforms.json").is_file():
        console.print(f"--process: using the capture already computed in {out} (delete it to compute the poses again)", highlight=False)
    else:
        console.print(f"--process: computing camera poses of {data} into {out}", highlight=False)
        result = process_capture(ProcessOptions(input=Path(data), output=out))
        console.print(result.summary_line(), highlight=False, soft_wrap=True)
    argv, _ = pop_option(argv, "--data")
    return argv + ["--data", str(out)]
