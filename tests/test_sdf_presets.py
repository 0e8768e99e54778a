"""Every SDF method preset builds, trains a few steps on each target, and round-trips its config."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import open3d as o3d
import pytest
import torch

from fieldforge.app.config_io import dump_yaml, load_yaml
from fieldforge.app.config_sdf import SDF_METHODS, sdf_train_config, with_target
from fieldforge.app.runs import RunDir
from fieldforge.app.sdf_task import SDFTask, build_sdf_field, shape_reference, training_samples
from fieldforge.app.trainer import Trainer
from fieldforge.data.pointclouds import load_surface, sample_surface, with_normals


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("shapes")
    m = o3d.geometry.TriangleMesh.create_torus(0.5, 0.2, 24, 12)
    assert o3d.io.write_triangle_mesh(str(d / "torus.ply"), m)
    mesh = load_surface(d / "torus.ply")
    pts, _ = sample_surface(mesh.points, mesh.triangles, 3000, seed=0)
    np.savetxt(d / "torus.xyz", pts.numpy())
    return {"mesh": mesh, "points": with_normals(load_surface(d / "torus.xyz"))}


def _run(config, cloud, tmp_path: Path, steps: int = 4) -> dict:
    config = replace(
        config,
        trainer=replace(config.trainer, steps=steps, batch_size=256, eval_every=0, checkpoint_every=0, progress=False),
        sampling=replace(config.sampling, pool_size=4000),
        eval_resolution=16,
        eval_points=2000,
    )
    field = build_sdf_field(config)
    task = SDFTask(field, config, cloud, training_samples(cloud, config), shape_reference(cloud, 2000, 3), torch.device("cpu"))
    trainer = Trainer(config.trainer, config.optim, task, RunDir(tmp_path), torch.device("cpu"))
    trainer.save = lambda: None  # type: ignore[method-assign]
    before = {k: v.clone() for k, v in field.state_dict().items()}
    metrics = trainer.train()
    changed = [k for k, v in field.state_dict().items() if v.dtype.is_floating_point and not torch.equal(v, before[k])]
    assert changed, "training did not change any parameter"
    return metrics


@pytest.mark.parametrize("method", sorted(SDF_METHODS))
def test_every_preset_round_trips_and_trains_on_meshes(method, shapes, tmp_path):
    config = sdf_train_config(method)
    assert load_yaml(dump_yaml(config)) == config
    assert config.field.head == config.target == SDF_METHODS[method].target
    metrics = _run(config, shapes["mesh"], tmp_path)
    assert np.isfinite(metrics["iou"]) and 0.0 <= metrics["iou"] <= 1.0


@pytest.mark.parametrize("method", sorted(SDF_METHODS))
def test_every_preset_trains_on_point_clouds_with_the_other_target_too(method, shapes, tmp_path):
    preset = SDF_METHODS[method]
    other = "occupancy" if preset.target == "sdf" else "sdf"
    config = sdf_train_config(method, other)
    assert config.field.head == other
    metrics = _run(config, shapes["points"], tmp_path, steps=2)  # sdf: implicit loss (double backward)
    assert "chamfer_l1" in metrics


def test_with_target_switches_the_head_only():
    c = sdf_train_config("ff")
    o = with_target(c, "occupancy")
    assert o.field.head == "occupancy" and o.field.encoding == c.field.encoding and o.field.network == c.field.network
