"""FreSh on 3D fields: the 3-D spectrum peaks where a plane wave is, a smooth shape picks a small σ, and
``train sdf --fresh`` / ``train nerf --fresh`` log the ranking, train the pick and resume without re-selecting."""

import json
from dataclasses import replace

import numpy as np
import open3d as o3d
import pytest
import torch

from fieldforge.app.cli import main
from fieldforge.app.config_io import load_yaml
from fieldforge.app.tasks.sdf import TASK as SDF_TASK
from fieldforge.app.tasks.sdf import cube_points, sdf_train_config, shape_target
from fieldforge.data.pointclouds import load_surface
from fieldforge.fields.fresh import VolumeFreshConfig, spectrum
from tests.test_captures_nerfstudio import write_capture
from tests.test_nerf_train import TINY as NERF_TINY


@pytest.fixture(scope="module")
def sphere_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("shape") / "sphere.ply"
    m = o3d.geometry.TriangleMesh.create_sphere(0.3, 30)
    assert o3d.io.write_triangle_mesh(str(path), m)
    return path


@pytest.mark.parametrize("axis,cycles", [(0, 3), (1, 5), (2, 7)])
def test_3d_spectrum_of_a_plane_wave_peaks_at_its_frequency(axis, cycles):
    p = cube_points(24).reshape(24, 24, 24, 3)
    wave = torch.cos(2 * torch.pi * cycles * p[..., axis])[..., None]
    spec = spectrum(wave, spatial_dims=3, crop=None)
    assert int(torch.argmax(spec)) == cycles - 1
    assert float(spec[cycles - 1]) > 0.99 * float(spec.sum())  # all energy in that one shell


def test_shape_target_is_the_signed_distance_of_the_mesh(sphere_file):
    cloud = load_surface(sphere_file)
    side = 16
    sdf = shape_target(cloud, "sdf", side, sign_rays=11).reshape(-1)
    pts = cube_points(side)
    centre = torch.tensor(cloud.normalization.apply(np.zeros((1, 3))), dtype=torch.float32)
    radius = 0.3 * cloud.normalization.scale
    exact = (pts - centre).norm(dim=-1) - radius
    assert torch.allclose(sdf, exact, atol=0.01 * float(radius) + 2e-3)  # tessellated sphere vs the ideal one
    occ = shape_target(cloud, "occupancy", side, sign_rays=11).reshape(-1)
    assert torch.equal(occ, (sdf < 0).float())


def test_a_smooth_shape_picks_the_small_sigma(sphere_file):
    config = sdf_train_config("ff")
    config = replace(config, data=sphere_file, fresh_search=VolumeFreshConfig(values=(1.0, 40.0), seeds=2, max_side=16),
                     sampling=replace(config.sampling, pool_size=5000), eval_points=2000)
    assert config.target == "sdf"
    prepared = SDF_TASK.prepare(config)
    chosen, result, what = SDF_TASK.select_fresh(config, prepared, SDF_TASK.run_info(config, prepared), torch.device("cpu"))
    assert what == "sdf on a 16³ cube"
    assert result.best.value == 1.0 and chosen.encoding.sigma == 1.0
    assert result.ranking[1].distance > result.ranking[0].distance + 3 * max(s.stderr for s in result.ranking)


def test_cli_train_sdf_with_fresh_trains_the_pick_and_resumes_without_reselecting(tmp_path, sphere_file, capsys):
    argv = ["train", "sdf", "--data", str(sphere_file), "--method", "ff", "--fresh", "True", "--fresh-search.values", "1", "40",
            "--fresh-search.seeds", "2", "--fresh-search.max-side", "12", "--steps", "4", "--checkpoint-every", "2",
            "--batch-size", "512", "--sampling.pool-size", "5000", "--eval-resolution", "16", "--eval-points", "2000",
            "--output-dir", str(tmp_path), "--name", "s", "--progress", "False"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "FreSh picked sigma=1" in err and "sigma=40" in err
    log = json.loads((tmp_path / "s" / "fresh.json").read_text())
    assert log["parameter"] == "encoding.sigma" and log["best"]["value"] == 1.0
    assert load_yaml((tmp_path / "s" / "config.yaml").read_text()).field.encoding.sigma == 1.0
    assert main(["train", "sdf", "--resume", str(tmp_path / "s"), "--steps", "6"]) == 0
    assert "FreSh" not in capsys.readouterr().err  # the saved pick is trained on; no second selection


def test_cli_train_nerf_with_fresh_ranks_untrained_renders(tmp_path, capsys):
    cap = write_capture(tmp_path / "cap", n_views=10, width=16, height=12)
    argv = ["train", "nerf", "--data", str(cap), "--fresh", "True", "--fresh-search.values", "16", "256", "--fresh-search.seeds", "2",
            "--fresh-search.views", "2", "--fresh-search.crop", "6", "--fresh-search.steps-per-ray", "16", "--steps", "2",
            "--eval-every", "0", "--output-dir", str(tmp_path), "--name", "n"]
    argv += [a for a in NERF_TINY if a not in ("--field.encoding.max-resolution", "64")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "FreSh ranking (2 training views at 13 px)" in err and "max_resolution=16" in err and "max_resolution=256" in err
    log = json.loads((tmp_path / "n" / "fresh.json").read_text())
    assert log["parameter"] == "encoding.max_resolution" and sorted(r["value"] for r in log["ranking"]) == [16.0, 256.0]
    assert all(len(r["distances"]) == 2 and np.isfinite(r["distance"]) for r in log["ranking"])
    picked = load_yaml((tmp_path / "n" / "config.yaml").read_text()).field.encoding.max_resolution
    assert picked == int(log["best"]["value"])


def test_fresh_on_a_progressive_shape_method_is_refused(tmp_path, sphere_file, capsys):
    assert main(["train", "sdf", "--data", str(sphere_file), "--method", "sape", "--fresh", "True", "--output-dir", str(tmp_path)]) == 2
    assert "--fresh: FreSh has no tunable hyperparameter" in capsys.readouterr().err


def test_volume_side_follows_k_and_its_cap():
    assert VolumeFreshConfig(crop=32, max_side=32).volume_side() == 32
    assert VolumeFreshConfig(crop=5, max_side=32).volume_side() == 11
    assert replace(VolumeFreshConfig(), crop=2).volume_side() == 8
