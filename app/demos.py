"""The demos as functions: an image fit on a bundled photo, and the whole radiance-field pipeline on the
procedural capture (both need no data files)."""

from dataclasses import replace
from pathlib import Path

from fieldforge.app.atomic import atomic_write_bytes
from fieldforge.app.runs import RunDir

DEMO_CAPTURE = dict(n_views=40, width=64, height=64, supersample=2)
"""The embedded synthetic capture of the demo (rendered on the fly: no data files needed)."""


def write_synthetic_capture(
    output: Path, n_views: int = 40, width: int = 64, height: int = 64, supersample: int = 2, points: int = 0, backdrop_radius: float = 0.0,
) -> Path:
    """Render the procedural capture and write it atomically; returns its transforms.json (``backdrop_radius`` > 0:
    the unbounded variant, a distant textured sphere around the objects)."""
    from fieldforge.data.captures.synthetic import SyntheticCaptureConfig, synthetic_capture_files

    cfg = SyntheticCaptureConfig(n_views=n_views, width=width, height=height, supersample=supersample, n_points=points,
                                 backdrop_radius=backdrop_radius)
    files = synthetic_capture_files(cfg)
    for name, data in files.items():
        if name != "transforms.json":
            atomic_write_bytes(output / name, data)
    return atomic_write_bytes(output / "transforms.json", files["transforms.json"])  # last: marks completion


def demo_image(method: str = "ngp", steps: int = 400, size: int = 256, batch_size: int = 8192, output_dir: Path = Path("outputs"),
               progress: bool = True) -> tuple[RunDir, dict]:
    """Fit ``method`` to scikit-image's bundled 'astronaut' photo box-downscaled to ``size``²."""
    import numpy as np
    import skimage.data
    import skimage.transform
    import torch

    from fieldforge.app.tasks.image import image_train_config
    from fieldforge.app.train import train
    from fieldforge.data.images import encode_image, srgb_to_linear

    photo = skimage.data.astronaut()
    small = skimage.transform.resize(photo, (size, size), anti_aliasing=True, preserve_range=True) / 255.0
    linear = srgb_to_linear(torch.from_numpy(np.asarray(small, dtype=np.float32)))
    input_path = output_dir / "demo-input" / "astronaut.png"
    atomic_write_bytes(input_path, encode_image(linear, "png"))
    base = image_train_config(method)
    config = replace(
        base, data=input_path,
        trainer=replace(base.trainer, steps=steps, batch_size=batch_size, eval_every=0, checkpoint_every=max(1, steps // 2),
                        output_dir=output_dir, name=f"demo-{method}", progress=progress),
    )  # fmt: skip
    return train(config)


def demo_nerf_config(capture: Path, output_dir: Path, steps: int, progress: bool = True):
    """The demo's NeRF run: ``ngp`` with a hash grid and occupancy grid sized for a 64² capture on a CPU."""
    from fieldforge.app.tasks.nerf import nerf_train_config
    from fieldforge.fields.encodings.hashgrid import HashGridEncodingConfig

    base = nerf_train_config("ngp")
    return replace(
        base,
        data=capture,
        field=replace(base.field, encoding=HashGridEncodingConfig(n_levels=12, log2_table_size=15, max_resolution=256)),
        trainer=replace(
            base.trainer, steps=steps, batch_size=1024, eval_every=0, checkpoint_every=steps, output_dir=output_dir,
            name="demo-nerf", progress=progress,
        ),
        render=replace(base.render, grid_resolution=48, steps_per_ray=256, grid_warmup_steps=64, grid_update_every=16,
                       target_samples=1 << 14, max_rays=4096),
    )


def demo_nerf(output_dir: Path = Path("outputs"), steps: int = 400, progress: bool = True, video_frames: int = 48, mesh_resolution: int = 128) -> dict:
    """The whole radiance-field pipeline on the embedded synthetic capture: render the capture, train
    ``ngp``, print test PSNR, then write test renders, an orbit video, a coloured mesh and a point cloud.

    Returns ``{"run", "capture", "renders", "video", "mesh", "pointcloud", "metrics"}``.
    """
    from fieldforge.app.export_mesh import ExportMeshConfig, export_mesh
    from fieldforge.app.export_views import (ExportPointcloudConfig, ExportRenderConfig, ExportVideoConfig, export_pointcloud,
                                             export_render, export_video)
    from fieldforge.app.train import train

    capture = output_dir / "demo-capture"
    if not (capture / "transforms.json").is_file():
        write_synthetic_capture(capture, **DEMO_CAPTURE)  # type: ignore[arg-type]
    run, metrics = train(demo_nerf_config(capture, output_dir, steps, progress))
    renders, _ = export_render(ExportRenderConfig(run=run.path, depth=True))
    video, _ = export_video(ExportVideoConfig(run=run.path, frames=video_frames, fps=24))
    mesh, mesh_m = export_mesh(ExportMeshConfig(run=run.path, resolution=mesh_resolution, slices=False))
    cloud, _ = export_pointcloud(ExportPointcloudConfig(run=run.path, points=20_000))
    return {"run": run.path, "capture": capture, "renders": renders, "video": video, "mesh": mesh, "pointcloud": cloud,
            "metrics": {**metrics, "mesh_faces": mesh_m["faces"]}}
