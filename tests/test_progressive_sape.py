"""SAPE: the on-the-fly mask equals the dense blur-then-interpolate reference, frozen cells never advance,
memory is bounded in 3D, block updates follow the training progress (a resumed run with more steps follows
the longer schedule), and a run resumes bit for bit with its SAPE state."""

import itertools
import shutil

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from fieldforge.app.cli import main
from fieldforge.app.runs import RunDir
from fieldforge.data.images import encode_image, srgb_to_linear
from fieldforge.data.synthetic import test_image as make_test_image
from fieldforge.fields.capabilities import HasProgressMap
from fieldforge.fields.encodings import FourierEncodingConfig
from fieldforge.fields.encodings.sape import SAPEConfig, fill_unvisited


def dense_reference_mask(blocks: torch.Tensor, n_blocks: int, k: int, x: torch.Tensor) -> torch.Tensor:
    """float64 brute force: dense per-cell block masks, k-box blur (replicate), multilinear interpolation
    at cell centres (u·res − 0.5) with border-clamped corners."""
    d, res = blocks.ndim, blocks.shape[0]
    dense = (blocks[..., None] > torch.arange(n_blocks)).double().movedim(-1, 0)[None]  # (1, nb, *grid)
    r = k // 2
    padded = F.pad(dense, (r, r) * d, mode="replicate")
    blurred = [F.avg_pool1d, F.avg_pool2d, F.avg_pool3d][d - 1](padded, k, stride=1)[0].movedim(0, -1)  # (*grid, nb)
    out = torch.zeros(x.shape[0], n_blocks, dtype=torch.float64)
    t = x.double() * res - 0.5
    i0 = torch.floor(t)
    f = t - i0
    for corner in itertools.product((0, 1), repeat=d):
        idx = [((i0[:, a].long() + corner[a]).clamp(0, res - 1)) for a in range(d)]
        w = torch.ones(x.shape[0], dtype=torch.float64)
        for a in range(d):
            w = w * (f[:, a] if corner[a] else 1 - f[:, a])
        out += w[:, None] * blurred[tuple(idx)]
    return out


@pytest.mark.parametrize("dim,res,k", [(2, 9, 3), (2, 12, 5), (3, 6, 3), (1, 7, 3)])
def test_mask_equals_dense_blur_then_interpolate(dim, res, k):
    m = 10
    enc = SAPEConfig(n_features=m, grid_resolution=res, blur=k).setup(dim)
    gen = torch.Generator().manual_seed(dim * 100 + res)
    enc.blocks.copy_(torch.randint(0, m + 1, enc.blocks.shape, generator=gen, dtype=torch.int32))
    x = torch.rand(300, dim, generator=gen)
    x[:8] = torch.tensor([0.0, 1.0]).repeat(8 // 2 + 1)[:8, None].expand(8, dim)  # exact borders
    got = enc.block_mask(x).double()
    torch.testing.assert_close(got, dense_reference_mask(enc.blocks, m, k, x), atol=2e-6, rtol=0)


def test_features_are_the_fourier_features_times_the_mask():
    enc = SAPEConfig(sigma=4.0, n_features=6, grid_resolution=4, num_blocks=3, seed=2).setup(2)
    plain = FourierEncodingConfig(sigma=4.0, n_features=6, seed=2, include_input=True).setup(2)
    x = torch.rand(20, 2)
    out = enc(x)
    torch.testing.assert_close(out[:, :2], 2 * x - 1)
    assert torch.all(out[:, 2:] == 0)  # at init only the identity block is on
    enc.blocks.fill_(3)
    assert torch.equal(enc(x), plain(x))  # fully unmasked: plain Fourier features
    enc.blocks.fill_(1)  # block 0 = frequencies 0 and 1 (two per block)
    alpha = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, 0.0]).repeat_interleave(2)
    torch.testing.assert_close(enc(x)[:, 2:], plain(x)[:, 2:] * alpha)


def test_loss_splat_uses_the_interpolation_weights():
    enc = SAPEConfig(n_features=4, grid_resolution=5, block_spacing=100.0).setup(2)
    x = torch.rand(64, 2, generator=torch.Generator().manual_seed(0))
    loss = torch.rand(64, generator=torch.Generator().manual_seed(1))
    enc.update(0.1, x, loss)
    assert int(enc.blocks.max()) == 0  # no period closed yet: the splats stay in the buffers
    idx, w = enc.corner_weights(x)
    torch.testing.assert_close(w.sum(1), torch.ones(64))
    expected_l, expected_w = torch.zeros(25, dtype=torch.float64), torch.zeros(25, dtype=torch.float64)
    for i in range(64):
        for c in range(4):
            expected_l[idx[i, c]] += float(w[i, c] * loss[i])
            expected_w[idx[i, c]] += float(w[i, c])
    torch.testing.assert_close(enc.loss_sum.reshape(-1).double(), expected_l, atol=1e-5, rtol=0)
    torch.testing.assert_close(enc.weight_sum.reshape(-1).double(), expected_w, atol=1e-5, rtol=0)
    # Interior points: the weighted cell centres reproduce the point (multilinear weights).
    inner = (x > 0.1).all(1) & (x < 0.9).all(1)
    iy, ix = idx // 5, idx % 5  # row-major: axis 0 slowest
    centres = torch.stack([(iy.float() + 0.5) / 5, (ix.float() + 0.5) / 5], -1)
    torch.testing.assert_close((w[..., None] * centres).sum(1)[inner], x[inner], atol=1e-5, rtol=0)


def test_a_cell_below_epsilon_never_advances():
    res, eps, T = 12, 1e-3, 16
    enc = SAPEConfig(n_features=20, grid_resolution=res, epsilon=eps, block_spacing=2 / T, blur=3).setup(2)
    u = (torch.arange(res) + 0.5) / res
    grid = torch.stack(torch.meshgrid(u, u, indexing="ij"), -1).reshape(-1, 2)  # every cell centre once
    left = grid[:, 0] < 0.5
    # Block 1: the left half is already fitted (loss ≪ ε), the right half is not.
    for step in (1, 2):
        enc.update(step / T, grid, torch.where(left, torch.full_like(u[:1], 1e-5), torch.ones(1)).expand(grid.shape[0]).clone())
    frozen = enc.blocks.clone()
    far_left = (torch.arange(res) < res // 2 - 1)[:, None].expand(res, res)  # outside the blur's reach of the boundary
    assert torch.all(frozen[far_left] == 0) and torch.all(frozen[res // 2 + 1 :] == 1)
    # Afterwards the loss is high everywhere: frozen cells must stay frozen, the others keep advancing.
    for step in range(3, 15):
        enc.update(step / T, grid, torch.ones(grid.shape[0]))
    assert torch.all(enc.blocks[far_left] == 0)
    assert torch.all(enc.blocks[res // 2 + 1 :] == 7)  # one block per 2 steps: steps 2, 4, ..., 14
    assert torch.all(~enc.in_progress[far_left])
    levels = enc.progress_map()
    assert isinstance(enc, HasProgressMap) and levels.shape == (res, res) and abs(float(levels.max()) - 7 / 20) < 1e-7


def test_unvisited_cells_are_filled_from_their_visited_neighbours():
    values = torch.tensor([5.0, 0.0, 0.0, 0.0, 1.0])
    filled, known = fill_unvisited(values, torch.tensor([True, False, False, False, True]), 3)
    torch.testing.assert_close(filled, torch.tensor([5.0, 5.0, 3.0, 1.0, 1.0]))  # round 1: cells 1, 3; round 2: cell 2
    assert bool(known.all())
    _, none = fill_unvisited(values, torch.zeros(5, dtype=torch.bool), 3)
    assert not bool(none.any())


def test_sparse_evidence_freezes_only_where_the_loss_is_low_and_progress_stops():
    T = 6
    enc = SAPEConfig(n_features=3, grid_resolution=8, block_spacing=1 / T, epsilon=0.5, blur=3).setup(2)
    samples = torch.tensor([[0.0625, 0.0625], [0.9375, 0.9375]])  # centres of cells (0, 0) and (7, 7)
    enc.update(1 / T, samples, torch.tensor([10.0, 0.01]))
    assert int(enc.blocks[0, 0]) == 1 and int(enc.blocks[1, 2]) == 1  # unvisited, nearest evidence is high
    assert int(enc.blocks[7, 7]) == 0 and int(enc.blocks[6, 5]) == 0  # unvisited, nearest evidence is low
    for step in range(2, 10):
        enc.update(step / T)  # no evidence at all: nothing freezes, cells in progress keep advancing
    assert int(enc.blocks[0, 0]) == 3 and int(enc.blocks[7, 7]) == 0  # capped at num_blocks; frozen stays 0


def test_block_updates_follow_the_progress_for_any_run_length():
    """Default spacing 1/(2·num_blocks): every block can open by mid-training, in a long run one block per
    period, in a run shorter than 2·num_blocks steps several per update; nothing changes after the end."""
    for T, per_update in ((64, None), (4, 2)):
        enc = SAPEConfig(n_features=4, grid_resolution=4).setup(2)  # 4 blocks, spacing 1/8
        opened = []
        for step in range(1, T + 1):
            before = int(enc.blocks.max())
            enc.update(step / T)  # no evidence: nothing freezes
            if int(enc.blocks.max()) > before:
                opened.append((step, int(enc.blocks.max()) - before))
        if per_update is None:
            assert opened == [(8 * k, 1) for k in range(1, 5)]  # progress 1/8, 2/8, 3/8, 4/8 of 64 steps
        else:
            assert opened == [(1, per_update), (2, per_update)]  # 4 steps: 2 periods per update, done at mid-training
        assert int(enc.blocks.min()) == 4


def test_resumed_with_a_longer_total_updates_follow_the_longer_schedule():
    """500 steps of a 500-step schedule, then continued to 1000 steps: block periods close where the
    1000-step run's progress crosses the next multiple of the spacing (steps 750 and 1000), not at the
    500-step run's next one (step 625 of the longer run)."""
    cfg = SAPEConfig(n_features=8, grid_resolution=4, num_blocks=8, block_spacing=0.25)

    def run(enc, steps, total):
        opened = []
        for step in steps:
            before = int(enc.blocks.max())
            enc.update(step / total)
            if int(enc.blocks.max()) > before:
                opened.append(step)
        return opened

    short, fresh = cfg.setup(2), cfg.setup(2)
    assert run(short, range(1, 501), 500) == [125, 250, 375, 500]
    resumed = cfg.setup(2)
    resumed.load_state_dict(short.state_dict(), strict=True)  # the checkpoint of step 500
    assert run(resumed, range(501, 1001), 1000) == [750, 1000]
    assert run(fresh, range(1, 1001), 1000) == [250, 500, 750, 1000]  # the same steps from 500 on
    assert int(resumed.blocks.max()) == 6 and float(resumed.progress) == 1.0


def test_3d_memory_is_bounded_by_the_cell_count():
    enc = SAPEConfig(n_features=256).setup(3)
    assert enc.res == 64 and enc.n_blocks == 256 and enc.schedule_end == 0.5  # defaults: independent of the run length
    state_bytes = sum(t.numel() * t.element_size() for t in enc.state_dict().values())
    assert state_bytes < 4_000_000  # a dense 64³ × 512 float mask would be 537 MB
    enc.blocks.copy_(torch.randint(0, 257, enc.blocks.shape, dtype=torch.int32))
    x = torch.rand(2000, 3)
    mask = enc.block_mask(x)
    assert mask.shape == (2000, 256) and bool(((mask >= 0) & (mask <= 1)).all())
    assert bool((mask[:, 1:] <= mask[:, :-1] + 1e-6).all())  # lower blocks are always at least as open


def test_state_dict_round_trip_restores_training_state():
    a = SAPEConfig(n_features=8, grid_resolution=6, block_spacing=0.03).setup(2)
    for step in range(1, 8):
        a.update(step / 100, torch.rand(40, 2), torch.rand(40))
    b = SAPEConfig(n_features=8, grid_resolution=6, block_spacing=0.03).setup(2)
    b.load_state_dict(a.state_dict(), strict=True)
    assert int(a.blocks.max()) == 2  # steps 3 and 6
    for name in ("blocks", "in_progress", "loss_sum", "weight_sum", "progress"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    x = torch.rand(10, 2)
    assert torch.equal(a(x), b(x))


def test_cli_train_sape_resumes_bit_exact_and_exports_the_mask_map(tmp_path, capsys):
    img = tmp_path / "img.png"
    img.write_bytes(encode_image(srgb_to_linear(make_test_image(16, 20, texture_cycles=4.0)), "png"))
    common = ["train", "image", "--data", str(img), "--method", "sape", "--steps", "16", "--batch-size", "256",
              "--field.encoding.n-features", "16", "--field.encoding.num-blocks", "16", "--field.encoding.grid-resolution", "8", "--field.encoding.block-spacing", "0.1875",
              "--field.encoding.epsilon", "0.02", "--field.network.width", "16", "--field.network.n-hidden-layers", "1",
              "--eval-every", "0", "--checkpoint-every", "8", "--keep-checkpoints", "5", "--output-dir", str(tmp_path), "--progress", "False"]
    assert main([*common, "--name", "ref"]) == 0
    assert "trained sape" in capsys.readouterr().out
    # Simulate a run killed after its step-8 checkpoint (mid block period: loss splats are partial), then resumed.
    shutil.copytree(tmp_path / "ref", tmp_path / "cut")
    for p in (tmp_path / "cut" / "checkpoints").glob("step-000016*"):
        p.unlink()
    assert main(["train", "image", "--resume", str(tmp_path / "cut"), "--progress", "False"]) == 0
    a = load_file(str(tmp_path / "ref" / "checkpoints" / "step-000016.safetensors"))
    b = load_file(str(tmp_path / "cut" / "checkpoints" / "step-000016.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert int(a["encoding.blocks"].max()) == 5  # the schedule did advance (progress 3/16 apart: steps 3, 6, 9, 12, 15)
    assert float(a["encoding.weight_sum"].sum()) > 0  # step 16 left a partial period in the buffers

    capsys.readouterr()
    assert main(["export", "image", "--run", str(tmp_path / "ref"), "--sape-map", "True"]) == 0
    out = RunDir(tmp_path / "ref").exports_dir / "sape-map.png"
    png = iio.imread(out)
    assert png.shape == (16, 20) and png.dtype == np.uint8
    blocks = a["encoding.blocks"].float() / 16
    # Pixel (row y, col x) shows the cell containing its centre (grid axis 0 = x).
    for y, x in ((0, 0), (15, 19), (7, 3)):
        cell = blocks[min(7, int((x + 0.5) / 20 * 8)), min(7, int((y + 0.5) / 16 * 8))]
        assert png[y, x] == round(float(cell) * 255)
    assert main(["export", "image", "--run", str(tmp_path / "ref"), "--level", "1"]) == 2  # not a PINs run
