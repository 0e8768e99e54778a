"""Every NeRF preset builds, round-trips through YAML, and trains (loss finite and falling) on a tiny capture."""

from dataclasses import replace

import pytest
import torch

from fieldforge.app.config_io import dump_yaml, load_yaml
from fieldforge.app.tasks.nerf import METHODS as NERF_METHODS
from fieldforge.app.tasks.nerf import TASK as NERF_TASK
from fieldforge.app.tasks.nerf import NerfTask, nerf_train_config
from fieldforge.app.trainer import Stage, StepContext
from fieldforge.data.captures import CaptureOptions, load_capture
from tests.test_captures_nerfstudio import write_capture


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    return load_capture(write_capture(tmp_path_factory.mktemp("cap"), n_views=6, width=16, height=12), CaptureOptions())


def build_model(cfg, capture):
    return NERF_TASK.build_model(cfg, NERF_TASK.run_info(cfg, capture))


@pytest.mark.parametrize("method", sorted(NERF_METHODS))
def test_preset_trains(method, capture):
    cfg = nerf_train_config(method)
    assert cfg.field.head == "radiance"
    assert load_yaml(dump_yaml(cfg)) == cfg
    cfg = replace(cfg, trainer=replace(cfg.trainer, batch_size=128, steps=6),
                  render=replace(cfg.render, grid_resolution=8, steps_per_ray=32, target_samples=0))
    model = build_model(cfg, capture)
    task = NerfTask(model, capture, cfg, torch.device("cpu"), seed=cfg.trainer.seed)
    stage = Stage("train", 6)
    opt = torch.optim.Adam(task.param_groups(cfg.optim.lr), eps=cfg.optim.eps)
    losses = []
    for step in range(6):
        r = task.train_step(StepContext(step, stage, 0, step))
        opt.zero_grad()
        r.loss.backward()
        opt.step()
        model.update((step + 1) / 6, r.coords, r.per_sample_loss)  # progress through the 6 steps
        losses.append(float(r.loss.detach()))
        assert r.coords is not None and r.per_sample_loss is not None and r.coords.shape[0] == r.per_sample_loss.shape[0]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert min(losses[3:]) < losses[0]


def test_train_nerf_help_lists_the_options(capsys):
    from fieldforge.app.cli import main

    with pytest.raises(SystemExit) as e:
        main(["train", "nerf", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for opt in ("--data", "--method", "--render.grid-resolution", "--downscale", "--background", "--field.radiance.density-activation"):
        assert opt in out
    assert "--capture.downscale" not in out  # capture options are top-level now; the old spelling is an alias


def test_old_capture_option_spelling_is_an_alias():
    from fieldforge.app.cli_train import parse_train

    def parse(*argv: str):
        return parse_train(NERF_TASK, ["--data", "cap", "--device", "cpu", *argv], "fieldforge train nerf")

    new = parse("--downscale", "2", "--holdout-every", "4")
    assert new.capture.downscale == 2 and new.capture.holdout_every == 4
    assert parse("--capture.downscale", "2", "--capture.holdout-every=4") == new


def test_training_rays_respect_the_sample_budget(capture):
    cfg = nerf_train_config("ngp")
    cfg = replace(cfg, render=replace(cfg.render, grid_resolution=8, steps_per_ray=64, early_stop_eps=0.0))
    model = build_model(cfg, capture)  # fresh grid: everything occupied, ~64 samples per ray
    o = torch.tensor([[0.0, 0.0, 3.0]]).repeat(32, 1)
    d = torch.nn.functional.normalize(torch.randn(32, 3) * 0.05 + torch.tensor([0.0, 0.0, -1.0]), dim=-1)
    full, _, _ = model.render_rays(o, d, torch.ones(3), training=True)
    cut, _, ri = model.render_rays(o, d, torch.rand(32, 3), training=True, max_samples=300)
    assert full.rgb.shape[0] == 32 and full.n_samples > 300
    assert 1 <= cut.rgb.shape[0] < 32 and cut.n_samples <= 300 and int(ri.max()) < cut.rgb.shape[0]
