"""PINs: residual levels (adding a level leaves lower levels unchanged), progressive gates (functions of the
training progress, so a resumed run with more steps follows the longer schedule), level export."""

import math

import pytest
import torch

from fieldforge.app.cli import main
from fieldforge.app.runs import RunDir
from fieldforge.data.images import encode_image, srgb_to_linear
from fieldforge.data.synthetic import test_image as make_test_image
from fieldforge.fields.capabilities import HasLevels
from fieldforge.fields.networks.pins import PINsConfig, band_sizes


def test_band_sizes_keep_sin_cos_pairs_and_cover_every_feature():
    assert band_sizes(512, 4) == [128] * 4
    assert band_sizes(20, 3) == [8, 6, 6]  # 10 pairs → 4, 3, 3 pairs
    assert band_sizes(9, 2) == [5, 4]  # odd: single features
    with pytest.raises(ValueError):
        band_sizes(4, 3)


def _pins(levels: int, seed: int = 0, **kw):
    torch.manual_seed(seed)
    return PINsConfig(n_levels=levels, width=24, **kw).setup(16 * levels, 3, 2)


def test_adding_a_level_leaves_lower_level_outputs_unchanged_at_init():
    """Level l's output does not depend on level l+1: a 4-level PINs truncated at 3 equals the 3-level one."""
    coords = torch.rand(50, 2, generator=torch.Generator().manual_seed(1))
    h3 = torch.randn(50, 48, generator=torch.Generator().manual_seed(2))
    h4 = torch.cat([h3, torch.randn(50, 16)], dim=-1)  # one more frequency band for the new level
    three, four = _pins(3), _pins(4)
    ys3 = three.level_outputs(h3, coords, 3, use_gates=False)
    ys4 = four.level_outputs(h4, coords, 4, use_gates=False)
    for a, b in zip(ys3, ys4[:3]):
        assert torch.equal(a, b)
    # At init only level 1 is open, so adding a level does not change the network output either.
    assert torch.equal(four(h4, coords), three(h3, coords))
    assert torch.equal(four(h4, coords), ys4[0])
    # Truncation for export gives exactly the level outputs.
    for level in range(1, 5):
        four.set_level(level)
        four.update(1.0)
        assert torch.equal(four(h4, coords), ys4[level - 1])


def test_levels_open_on_schedule_with_a_continuous_cosine_ramp():
    T = 200
    net = PINsConfig(n_levels=3, width=8, schedule_end=0.5, ramp=0.1).setup(12, 1, 2)
    assert [net.level_start(level) * T for level in (1, 2, 3)] == [0.0, 50.0, 100.0]
    for step in (0, 50, 60, 70, 100, 110, 120, 200):
        g = net.gates(step / T)
        for level, start in ((2, 50), (3, 100)):
            u = min(1.0, max(0.0, (step - start) / 20))
            assert math.isclose(g[level - 1], (1 - math.cos(math.pi * u)) / 2, abs_tol=1e-12)
        net.update(step / T)
        assert net.gates() == g  # the stored progress gives the same gates
    # No jump when level 2 opens: the output at its start step equals the level-1 output.
    h, c = torch.randn(9, 12), torch.rand(9, 2)
    net.update(50 / T)
    assert torch.equal(net(h, c), net.level_outputs(h, c, 1)[0])
    net.update(51 / T)
    assert not torch.equal(net(h, c), net.level_outputs(h, c, 1)[0])


def test_closed_levels_get_no_gradient():
    net = PINsConfig(n_levels=2, width=8).setup(8, 1, 2)
    net(torch.randn(5, 8), torch.rand(5, 2)).sum().backward()
    assert all(p.grad is None for p in net.levels[1].parameters())
    assert all(p.grad is not None for p in net.levels[0].parameters())


def test_pins_is_a_level_capability_and_checkpoints_its_step():
    a = _pins(2)
    a.update(0.42)
    b = _pins(2, seed=5)
    b.load_state_dict(a.state_dict(), strict=True)
    assert isinstance(b, HasLevels) and b.n_levels == 2 and float(b.progress) == 0.42 and b.gates() == a.gates()


def test_resumed_with_a_longer_total_levels_open_as_in_the_longer_run():
    """500 steps of a 500-step schedule, then continued to 1000 steps: from step 500 on the gates (and the
    output) equal a fresh 1000-step run's at the same step; the last level, open at the end of the short
    run, is closed again at 50 % of the long one and reopens on the long schedule."""
    short, fresh = _pins(3, ramp=0.1), _pins(3, ramp=0.1)
    for step in range(1, 501):
        short.update(step / 500)
    assert short.gates() == [1.0, 1.0, 1.0]
    resumed = _pins(3, seed=7, ramp=0.1)
    resumed.load_state_dict(short.state_dict(), strict=True)  # the checkpoint of step 500
    fresh.load_state_dict({k: v for k, v in short.state_dict().items() if k != "progress"}, strict=False)
    h, c = torch.randn(6, 48), torch.rand(6, 2)
    for step in (500, 501, 520, 560, 600, 1000):
        resumed.update(step / 1000)
        fresh.update(step / 1000)
        assert resumed.gates() == fresh.gates() == fresh.gates(step / 1000)
        assert torch.equal(resumed(h, c), fresh(h, c))
    resumed.update(500 / 1000)
    assert resumed.gates()[2] == 0.0  # level 3 starts to open at 50 % of the longer run (step 500) ...
    resumed.update(560 / 1000)
    assert 0.0 < resumed.gates()[2] < 1.0  # ... and ramps over 10 % of it (100 steps), not 50


def test_cli_exports_each_level_and_finer_levels_fit_better(tmp_path, capsys):
    img = tmp_path / "img.png"
    img.write_bytes(encode_image(srgb_to_linear(make_test_image(24, 32, texture_cycles=6.0)), "png"))
    rc = main(["train", "image", "--data", str(img), "--method", "pins", "--steps", "80", "--batch-size", "512",
               "--field.network.width", "16", "--field.network.ramp", "0.02", "--eval-every", "0", "--output-dir", str(tmp_path),
               "--name", "p", "--progress", "False", "--optim.lr", "3e-3"])
    assert rc == 0
    capsys.readouterr()
    psnrs = []
    for level in (1, 2, 3, 4):
        assert main(["export", "image", "--run", str(tmp_path / "p"), "--level", str(level)]) == 0
        assert (tmp_path / "p" / "exports" / f"image-x1-level{level}.png").is_file()
        psnrs.append(float(capsys.readouterr().out.split("PSNR ")[1].split(" dB")[0]))
    final = [r for r in RunDir(tmp_path / "p").read_metrics() if r["kind"] == "eval"][-1]["psnr"]
    assert abs(psnrs[-1] - final) < 0.01  # all levels = the trained field
    assert psnrs[0] < psnrs[-1] - 1.0, psnrs  # level 1 is a coarser (lower-PSNR) version
    assert main(["export", "image", "--run", str(tmp_path / "p"), "--level", "5"]) == 2
    assert "--level must be in 1..4" in capsys.readouterr().err
