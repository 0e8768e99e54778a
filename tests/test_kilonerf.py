"""KiloNeRF beyond the kernels: tile grids sized from the box, the distillation API (tile ids, samples per
tile, per-tile quantiles, view-dependent groups), occupancy from an analytic density (brute force), rendering
with skipping + early termination vs without, and the image preset end to end (CLI → load_run)."""

import dataclasses
import itertools
import math
from pathlib import Path

import pytest
import torch

from fieldforge.fields import kilonerf as kn
from fieldforge.fields.encodings import FrequencyEncodingConfig
from fieldforge.fields.field import FieldConfig, make_field
from fieldforge.fields.kernels.tiles_reference import tile_index
from fieldforge.fields.networks import TileBankConfig
from fieldforge.fields.networks.kilonerf import tiles_for_box
from fieldforge.fields.radiance import RadianceHeadConfig
from fieldforge.fields.radiance_model import NerfModel, RenderConfig
from fieldforge.fields.rendering.occupancy_from_density import fill_occupancy_grid
from fieldforge.fields.rendering.occupancy_grid import OccupancyGrid


def kilonerf_field(resolution: tuple[int, ...] = (), longest_axis: int = 16) -> FieldConfig:
    bank = TileBankConfig(resolution=resolution, longest_axis=longest_axis)
    return FieldConfig(
        encoding=FrequencyEncodingConfig(n_frequencies=4),
        network=bank,
        head="radiance",
        radiance=RadianceHeadConfig(
            density_activation="softplus", geo_feat_dim=32, direction_encoding=FrequencyEncodingConfig(n_frequencies=2),
            color_network=dataclasses.replace(bank, n_hidden_layers=1),
        ),
    )


def test_grid_is_16_along_the_longest_axis_and_proportional_on_the_others():
    assert tiles_for_box(torch.tensor([0.9, 1.6, 1.0]), 16) == (9, 16, 10)  # KiloNeRF's Lego grid
    assert tiles_for_box(torch.tensor([1.0, 1.0]), 16) == (16, 16)
    assert tiles_for_box(torch.tensor([0.01, 1.0]), 16) == (1, 16)
    box = torch.tensor([[-0.45, -0.8, -0.5], [0.45, 0.8, 0.5]])
    model = NerfModel(kilonerf_field(), box, RenderConfig(grid_resolution=8))
    assert kn.resolution(model) == (9, 16, 10) and kn.n_tiles(model) == 1440
    # the colour branch is a bank on the same grid, so the view-dependent layers are per tile as well
    assert model.field.radiance_head.color_network.resolution == (9, 16, 10)
    explicit = NerfModel(kilonerf_field(resolution=(2, 3, 4)), box, RenderConfig(grid_resolution=8))
    assert kn.resolution(explicit) == (2, 3, 4)
    with pytest.raises(ValueError, match="3 positive entries"):
        NerfModel(kilonerf_field(resolution=(2, 3)), box, RenderConfig(grid_resolution=8))


def test_tile_ids_and_samples_in_tiles_agree_for_fields_and_nerf_models():
    g = torch.Generator().manual_seed(0)
    image = make_field(FieldConfig(encoding=FrequencyEncodingConfig(n_frequencies=3), network=TileBankConfig(resolution=(3, 5))), 2, 3)
    box = torch.tensor([[-1.0, -2.0, -1.0], [1.0, 2.0, 0.5]])
    nerf = NerfModel(kilonerf_field(longest_axis=4), box, RenderConfig(grid_resolution=8))
    for model in (image, nerf):
        pts, ids = kn.sample_in_tiles(model, 7, g)
        t = kn.n_tiles(model)
        assert pts.shape[0] == 7 * t and torch.equal(ids, torch.arange(t).repeat_interleave(7))
        assert torch.equal(kn.tile_ids(model, pts), ids)  # every sampled point routes back to its own tile
        assert kn.has_tiles(model)
    # world → tile through the model's box: nerf tiles are (2, 4, 2) over the box above
    assert kn.resolution(nerf) == (2, 4, 2)
    p = torch.tensor([[-0.99, -1.99, -0.99], [0.99, 1.99, 0.49], [0.0, 0.0, -0.25], [5.0, -9.0, 0.0]])
    # z = -0.25 is the edge between the two z tiles: the upper one; the last point is outside: clamped
    assert kn.tile_ids(nerf, p).tolist() == [0, 15, (1 * 4 + 2) * 2 + 1, (1 * 4 + 0) * 2 + 1]
    plain = make_field(FieldConfig(), 2, 3)
    assert not kn.has_tiles(plain)
    with pytest.raises(ValueError, match="not a KiloNeRF model"):
        kn.tile_ids(plain, torch.rand(3, 2))


def test_per_tile_quantile_matches_torch_quantile_per_tile():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 9, (500,), generator=g)
    ids[ids == 4] = 5  # tile 4 empty
    ids[:1] = 7
    err = torch.rand(500, generator=g) ** 3
    for q in (0.0, 0.5, 0.99, 1.0):
        out = kn.per_tile_quantile(err, ids, 10, q)
        for t in range(10):
            sel = err[ids == t]
            if sel.numel() == 0:
                assert math.isnan(float(out[t]))
            else:
                assert float(out[t]) == pytest.approx(float(torch.quantile(sel, q)), abs=1e-6)


def test_view_dependent_groups_are_exactly_the_colour_tile_bank():
    model = NerfModel(kilonerf_field(longest_axis=2), torch.tensor([[-1.0] * 3, [1.0] * 3]), RenderConfig(grid_resolution=8))
    vd = {id(p) for p in kn.view_dependent_parameters(model)}
    colour = {id(p) for p in model.field.radiance_head.color_network.parameters()}
    position = {id(p) for p in model.field.network.parameters()}
    assert vd == colour and not vd & position and len(colour) == 4  # direction layer + RGB layer, weights and biases
    names = {g["name"] for g in model.param_groups(1e-3)}
    assert set(kn.VIEW_DEPENDENT_GROUPS) <= names
    image = make_field(FieldConfig(network=TileBankConfig(resolution=(2, 2))), 2, 3)
    assert kn.view_dependent_parameters(image) == []
    assert float(kn.view_dependent_penalty(image)) == 0.0
    # the penalty is λ Σ‖p‖₂ over exactly those tensors, and its gradient reaches only them
    colour = list(model.field.radiance_head.color_network.parameters())
    penalty = kn.view_dependent_penalty(model, weight=0.5)
    assert float(penalty.detach()) == pytest.approx(0.5 * sum(float(p.detach().double().norm()) for p in colour), rel=1e-6)
    penalty.backward()
    assert all(p.grad is not None for p in colour) and all(p.grad is None for p in model.field.network.parameters())


def test_occupancy_from_an_analytic_sphere_marks_exactly_the_cells_a_subsample_hits():
    res, radius = 8, 0.6
    grid = OccupancyGrid(torch.tensor([[-1.0] * 3, [1.0] * 3]), res)

    def sphere(p: torch.Tensor) -> torch.Tensor:
        return torch.where(p.norm(dim=-1) < radius, 50.0, 0.0)

    frac = fill_occupancy_grid(grid, sphere, threshold=10.0, subsamples=3)
    expected = torch.zeros(res, res, res, dtype=torch.bool)
    for i, j, k in itertools.product(range(res), repeat=3):
        for a, b, c in itertools.product(range(3), repeat=3):  # sub-cell centres, float64, independent of the code
            p = [-1.0 + (n + (s + 0.5) / 3) * 2.0 / res for n, s in ((i, a), (j, b), (k, c))]
            if math.sqrt(sum(x * x for x in p)) < radius:
                expected[i, j, k] = True
                break
    assert torch.equal(grid.binary, expected)
    assert frac == pytest.approx(float(expected.float().mean()))
    # properties: a cell whose centre is inside by more than its half-diagonal is occupied, one outside by more is empty
    centres = grid.cell_points(torch.arange(res**3)).reshape(res, res, res, 3).norm(dim=-1)
    half_diag = math.sqrt(3) / res
    assert bool(grid.binary[centres < radius - half_diag].all()) and not bool(grid.binary[centres > radius + half_diag].any())
    assert torch.equal(grid.occupied(torch.tensor([[0.0, 0.0, 0.0], [0.95, 0.95, 0.95]])), torch.tensor([True, False]))


def toy_scene(resolution=(4, 4, 4)) -> NerfModel:
    """A KiloNeRF whose 8 inner tiles (the cube [-0.5, 0.5]³) are dense (σ ≈ 8) and all others empty (σ ≈ 1e-13)."""
    torch.manual_seed(0)
    model = NerfModel(kilonerf_field(resolution=resolution), torch.tensor([[-1.0] * 3, [1.0] * 3]), RenderConfig(grid_resolution=16, steps_per_ray=96))
    bank = model.field.network
    from fieldforge.fields.kernels.tiles_reference import tile_centers

    solid = (tile_centers(bank.resolution) * 2 - 1).abs().amax(dim=-1) < 0.5
    with torch.no_grad():
        bank.weights[-1][:, :, 0] = 0.0
        bank.biases[-1][:, 0] = torch.where(solid, 8.0, -30.0)
    return model.eval()


def test_rendering_with_skipping_and_early_termination_matches_full_marching():
    fast = toy_scene()
    full = toy_scene()
    frac = kn.fill_occupancy(fast, fast.density, threshold=1.0)  # the field's own density
    assert frac == pytest.approx(8**3 / 16**3)  # exactly the cells of the inner cube
    fast.render_config = kn.kilonerf_render_config(fast.render_config)
    full.render_config = dataclasses.replace(full.render_config, early_stop_eps=0.0)  # no termination, grid all occupied
    assert bool(full.grid.binary.all())
    c2w = torch.eye(4)
    c2w[:3, 3] = torch.tensor([0.3, 0.2, 3.0])
    intr = torch.tensor([24.0, 24.0, 16.0, 16.0])
    bg = torch.tensor([1.0, 1.0, 1.0])
    t_fast, rgb_fast = kn.time_render(fast, c2w, intr, 32, 32, bg)
    t_full, rgb_full = kn.time_render(full, c2w, intr, 32, 32, bg)
    assert t_fast > 0 and t_full > 0
    _, _, acc = full.render_image(c2w, intr, 32, 32, None, bg)
    assert float(acc.max()) > 0.99 and float(acc.min()) < 0.01  # the cube is opaque and does not fill the frame
    # T < 0.01 termination drops at most 1% of the remaining colour per pixel
    assert float((rgb_fast - rgb_full).abs().max()) < 0.015
    o = torch.zeros(64, 3) + c2w[:3, 3]
    d = torch.nn.functional.normalize(torch.randn(64, 3, generator=torch.Generator().manual_seed(0)) * 0.2 + torch.tensor([0.0, 0.0, -1.0]), dim=-1)
    n_fast = fast.render_rays(o, d, bg)[0].n_samples
    n_full = full.render_rays(o, d, bg)[0].n_samples
    assert n_fast < 0.3 * n_full, (n_fast, n_full)


def test_tile_colours_differ_between_neighbouring_tiles():
    c = kn.tile_colors(torch.arange(1440))
    assert c.shape == (1440, 3) and float(c.min()) >= 0.15 and float(c.max()) <= 1.0
    assert float((c[1:] - c[:-1]).norm(dim=-1).min()) > 0.1


def test_train_image_kilonerf_from_the_cli_then_load_run(tmp_path: Path, capsys):
    from fieldforge.app.cli import main
    from fieldforge.app.loader import load_run
    from fieldforge.app.runs import RunDir
    from fieldforge.data.images import encode_image, srgb_to_linear
    from fieldforge.data.synthetic import test_image

    img = tmp_path / "img.png"
    img.write_bytes(encode_image(srgb_to_linear(test_image(32, 48, texture_cycles=2.0)), "png"))
    rc = main(["train", "image", "--data", str(img), "--method", "kilonerf", "--steps", "60", "--batch-size", "1024",
               "--eval-every", "0", "--output-dir", str(tmp_path), "--name", "k", "--progress", "False"])
    assert rc == 0
    run = RunDir.open(tmp_path / "k")
    final = [r for r in run.read_metrics() if r["kind"] == "eval"][-1]
    assert final["psnr"] > 20.0, final
    loaded = load_run(tmp_path / "k")
    assert kn.has_tiles(loaded.model) and kn.resolution(loaded.model) == (16, 16)
    xy = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.5, 0.26]])
    assert kn.tile_ids(loaded.model, xy).tolist() == [0, 255, 8 * 16 + 4]
    assert torch.equal(kn.tile_ids(loaded.model, xy), tile_index(loaded.model.to_unit(xy), (16, 16))[0])


def test_a_zero_tile_count_is_one_error_line_before_anything_is_written(tmp_path: Path, capsys):
    from fieldforge.app.cli import main
    from fieldforge.data.images import encode_image
    from fieldforge.data.synthetic import test_image

    img = tmp_path / "img.png"
    img.write_bytes(encode_image(test_image(16, 16), "png"))
    rc = main(["train", "image", "--data", str(img), "--method", "kilonerf", "--field.network.resolution", "0", "4",
               "--output-dir", str(tmp_path / "runs"), "--progress", "False"])
    assert rc == 2
    assert "--field.network.resolution must be ≥ 1" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_colour_bank_reuses_the_routing_only_of_the_very_same_unchanged_points():
    """The colour bank reuses the position bank's sort of the same coordinate tensor; any other tensor (same
    shape, other tiles) or the same tensor changed in place is routed afresh. Checked against the same points
    in another order (a stale route would put them in other tiles)."""
    torch.manual_seed(0)
    field = make_field(kilonerf_field(resolution=(3, 2, 4)), in_dim=3, bbox=torch.tensor([[-1.0] * 3, [1.0] * 3]))
    for p in field.parameters():  # tiles that differ: a wrong route changes the output
        p.data.add_(torch.randn_like(p) * 0.3)
    g = torch.Generator().manual_seed(1)
    a, b = (torch.rand(500, 3, generator=g) * 2 - 1 for _ in range(2))
    d = torch.nn.functional.normalize(torch.randn(500, 3, generator=g), dim=-1)
    perm = torch.randperm(500, generator=g)

    def shuffled(points, dirs):  # the outputs of the points evaluated in the order perm, put back in place
        out = field(points[perm], dirs[perm])
        rgb, sigma = torch.empty_like(out.rgb), torch.empty_like(out.density)
        rgb[perm], sigma[perm] = out.rgb, out.density
        return rgb, sigma

    with torch.no_grad():
        for points in (a, b, a):
            out = field(points, d)
            rgb, sigma = shuffled(points, d)
            torch.testing.assert_close(out.rgb, rgb, atol=1e-6, rtol=0)
            torch.testing.assert_close(out.density, sigma, atol=1e-5, rtol=1e-6)
        unit = field.to_unit(a)
        field.radiance_head(unit, field.network(field.encoding(unit), unit), d)
        unit.mul_(-1.0).add_(1.0)  # the same tensor, other tiles
        moved = field.radiance_head(unit, field.network(field.encoding(unit), unit), d).rgb
        u2 = unit[perm].clone()
        again = field.radiance_head(u2, field.network(field.encoding(u2), u2), d[perm]).rgb
    torch.testing.assert_close(moved[perm], again, atol=1e-6, rtol=0)


def test_rendering_without_gradients_uses_the_current_weights():
    """The bank's bias-folded copy (the no-gradient path) equals the training path, and follows every change of
    the parameters: an optimizer step, a loaded state dict."""
    torch.manual_seed(0)
    field = make_field(kilonerf_field(resolution=(3, 2, 4)), in_dim=3, bbox=torch.tensor([[-1.0] * 3, [1.0] * 3]))
    g = torch.Generator().manual_seed(2)
    x = torch.rand(400, 3, generator=g) * 2 - 1
    d = torch.nn.functional.normalize(torch.randn(400, 3, generator=g), dim=-1)
    opt = torch.optim.Adam(field.parameters(), lr=0.05)
    saved = {k: v.clone() for k, v in field.state_dict().items()}
    for _ in range(3):
        out = field(x, d)
        with torch.no_grad():
            fast = field(x, d)
        torch.testing.assert_close(fast.rgb, out.rgb.detach(), atol=1e-6, rtol=0)
        torch.testing.assert_close(fast.density, out.density.detach(), atol=1e-5, rtol=1e-6)
        (out.rgb.square().mean() + out.density.mean()).backward()
        opt.step()
        opt.zero_grad()
    with torch.no_grad():
        changed = field(x, d).rgb
        field.load_state_dict(saved)
        restored = field(x, d).rgb
    assert float((changed - restored).abs().max()) > 1e-3
    torch.testing.assert_close(restored, field(x, d).rgb.detach(), atol=1e-6, rtol=0)


def test_rendering_queries_chain_both_banks_and_follow_the_weights():
    """A KiloNeRF radiance field's colour and density without gradients (both tile banks in one packed pass,
    the feature layer multiplied into the colour layer) equal its training query, across optimizer steps."""
    torch.manual_seed(1)
    field = make_field(kilonerf_field(resolution=(2, 3, 2)), in_dim=3, bbox=torch.tensor([[-1.0] * 3, [1.0] * 3]))
    assert field.network.can_chain(field.radiance_head.color_network, torch.device("cpu"))
    g = torch.Generator().manual_seed(3)
    x = torch.rand(500, 3, generator=g) * 2.4 - 1.2  # some outside the box: density 0 there
    d = torch.randn(500, 3, generator=g)  # not unit: the head normalizes
    opt = torch.optim.Adam(field.parameters(), lr=0.05)
    for _ in range(3):
        out = field(x, d)
        with torch.no_grad():
            rgb, sigma = field.rgb_density(x, d)
        torch.testing.assert_close(rgb, out.rgb.detach(), atol=1e-5, rtol=0)
        torch.testing.assert_close(sigma, out.density.detach(), atol=1e-5, rtol=1e-5)
        assert bool((sigma[((x < -1) | (x > 1)).any(-1)] == 0).all())
        rays, ri = d[:7], torch.randint(0, 7, (500,), generator=g)  # directions per ray, as the renderer passes them
        with torch.no_grad():
            torch.testing.assert_close(field.rgb_density(x, rays, ri)[0], field(x, rays[ri]).rgb, atol=1e-5, rtol=0)
        (out.rgb.square().mean() + out.density.mean()).backward()
        opt.step()
        opt.zero_grad()
    with torch.no_grad():
        assert field.rgb_density(x[:0], d[:0])[0].shape == (0, 3)
