"""FreSh: spectrum matches the diagonal-sum definition, peaks where a sinusoid is, the distance is W1, and
selection picks small σ for smooth targets and large σ for noisy ones."""

import itertools
import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from fieldforge.app.cli import main
from fieldforge.app.config_io import load_yaml
from fieldforge.app.tasks.image import TASK as IMAGE_TASK
from fieldforge.app.tasks.image import image_train_config
from fieldforge.data.images import ImageData, encode_image, srgb_to_linear
from fieldforge.data.synthetic import sinusoid_image
from fieldforge.fields.fresh import (
    FreshCandidate,
    FreshConfig,
    candidate_configs,
    fresh_select,
    init_render_config,
    nonredundant_mask,
    spectrum,
    spectrum_distance,
)
from fieldforge.fields.networks import MLPConfig


def freshs_2d_mask(s: int) -> torch.Tensor:
    """FreSh's get_2d_fft_mask, stated in closed form: the anti-triangle i + j ≤ s − 1 with both axes cut at
    s // 2, plus the cells (i, s − i) for 1 ≤ i ≤ s // 2."""
    m = torch.zeros(s, s, dtype=torch.bool)
    for i in range(s):
        for j in range(s):
            if i + j <= s - 1 and not (j == 0 and i > s // 2) and not (i == 0 and j > s // 2):
                m[i, j] = True
            if i + j == s and 1 <= i <= s // 2:
                m[i, j] = True
    return m


@pytest.mark.parametrize("s", [2, 5, 8, 13, 16])
def test_nonredundant_mask_is_freshs_and_keeps_one_of_each_conjugate_pair(s):
    m = nonredundant_mask(s, 2)
    assert torch.equal(m, freshs_2d_mask(s))
    m3 = nonredundant_mask(s, 3)
    for idx in itertools.product(range(s), repeat=3):
        partner = tuple((-v) % s for v in idx)
        assert bool(m3[tuple(idx)]) != bool(m3[partner]) or tuple(idx) == partner, idx


def test_spectrum_is_the_sum_along_antidiagonals_of_the_masked_fft():
    gen = torch.Generator().manual_seed(0)
    y = torch.rand(12, 12, 3, generator=gen, dtype=torch.float64)
    mag = np.abs(np.fft.fft2(y.numpy(), axes=(0, 1))).sum(-1) * freshs_2d_mask(12).numpy()
    flipped = mag[::-1]
    expected = np.array([np.trace(flipped, offset=k) for k in range(-11, 12)])[1:]
    np.testing.assert_allclose(spectrum(y, crop=None).numpy(), expected, rtol=1e-10)
    np.testing.assert_allclose(spectrum(y, crop=5).numpy(), expected[:5], rtol=1e-10)


@pytest.mark.parametrize("cx,cy", [(5, 0), (0, 9), (3, 4), (12, 12)])
def test_spectrum_of_a_sinusoid_peaks_at_its_frequency(cx, cy):
    img = sinusoid_image(64, 64, cycles_x=float(cx), cycles_y=float(cy))
    s = spectrum(img)
    assert int(torch.argmax(s)) == cx + cy - 1  # entry r − 1 holds index sum r (DC dropped)
    assert float(s[cx + cy - 1]) > 100 * float(torch.cat([s[: cx + cy - 1], s[cx + cy :]]).max())


def test_non_square_signals_are_resized_to_their_smallest_side():
    img = sinusoid_image(40, 80, cycles_x=6.0)  # 6 cycles across the width survive the resize to 40×40
    s = spectrum(img)
    assert s.shape == (64,) and int(torch.argmax(s)) == 5
    assert spectrum(img, side=17, crop=None).shape == (2 * 17 - 2,)


def test_spectrum_distance_is_wasserstein_1_on_bin_indices_and_ignores_scale():
    a, b = torch.zeros(20), torch.zeros(20)
    a[3], b[11] = 1.0, 5.0
    assert math.isclose(spectrum_distance(a, b), 8.0)
    c = torch.zeros(20)
    c[2], c[6] = 1.0, 1.0  # half the mass at distance 1, half at distance 3
    assert math.isclose(spectrum_distance(a, c), 2.0)
    assert spectrum_distance(a, torch.zeros(20)) == math.inf  # constant output: no spectrum


def _candidate(freq: float) -> FreshCandidate:
    return FreshCandidate(f"f={freq:g}", freq, lambda seed: sinusoid_image(32, 32, cycles_x=freq + (seed % 2)))


def test_fresh_select_ranks_by_mean_distance_and_handles_views():
    target = sinusoid_image(32, 32, cycles_x=6.0)
    result = fresh_select([_candidate(f) for f in (1.0, 6.0, 12.0)], target, seeds=4, crop=16, parameter="freq")
    assert [s.value for s in result.ranking] == [6.0, 1.0, 12.0]  # mean distances 0.5, 4.5, 6.5
    best = result.best
    np.testing.assert_allclose(best.distances, [0.0, 1.0, 0.0, 1.0], atol=1e-5)  # float32 leakage off the peak
    assert math.isclose(best.distance, 0.5, abs_tol=1e-5) and math.isclose(best.stderr, 0.5 / math.sqrt(4), abs_tol=1e-5)
    assert json.loads(json.dumps(result.to_dict()))["best"]["value"] == 6.0
    views = torch.stack([target, target])
    multi = FreshCandidate("v", 6.0, lambda seed: torch.stack([sinusoid_image(32, 32, 6.0), sinusoid_image(32, 32, 8.0)]))
    assert math.isclose(fresh_select([multi], views, seeds=1, crop=16).best.distance, 1.0, abs_tol=1e-5)  # mean over views (0 and 2)


def _select(target: torch.Tensor, values: tuple[float, ...]) -> float:
    c = image_train_config("ff")
    c = replace(c, field=replace(c.field, network=MLPConfig(width=64, n_hidden_layers=2)),
                fresh_search=FreshConfig(values=values, seeds=3, crop=32))
    image = ImageData(target, None, "linear")  # stored values = the target as given
    chosen, result, _ = IMAGE_TASK.select_fresh(c, image, IMAGE_TASK.run_info(c, image), torch.device("cpu"))
    assert chosen.encoding.sigma == result.best.value and chosen.encoding.seed == c.field.encoding.seed
    return result.best.value


def test_fresh_picks_small_sigma_for_smooth_and_large_sigma_for_noisy_targets():
    values = (1.0, 4.0, 16.0, 48.0)
    v = (torch.arange(64, dtype=torch.float32) + 0.5) / 64
    smooth = (0.5 + 0.3 * torch.exp(-((v[:, None] - 0.4) ** 2 + (v[None, :] - 0.6) ** 2) / 0.08))[..., None].expand(64, 64, 3)
    noisy = torch.rand(64, 64, 3, generator=torch.Generator().manual_seed(0))
    assert _select(smooth.contiguous(), values) <= 4.0
    assert _select(noisy, values) >= 16.0


def test_candidates_come_from_the_registered_parameter_and_progressive_encodings_are_refused():
    param, configs = candidate_configs(image_train_config("siren").field)
    assert param.name == "network.first_omega" and [v for _, v, _ in configs] == [float(v) for v in range(10, 201, 10)]
    assert configs[2][2].network.first_omega == 30.0
    param, configs = candidate_configs(image_train_config("pe").field, (3.0, 5.0))
    assert param.name == "encoding.max_log2_frequency" and [c.encoding.max_log2_frequency for _, _, c in configs] == [3.0, 5.0]
    with pytest.raises(LookupError, match="SAPEConfig"):
        candidate_configs(image_train_config("sape").field)
    with pytest.raises(LookupError, match="PINsConfig: it opens its frequency bands progressively"):
        candidate_configs(image_train_config("pins").field)


def test_renders_at_init_redraw_every_seed_and_apply_render_overrides():
    ff = image_train_config("ff").field
    assert init_render_config(ff, 7).encoding.seed == 7 and init_render_config(ff, 7).network == ff.network
    param, configs = candidate_configs(image_train_config("ngp").field, (64.0, 256.0))
    assert param.name == "encoding.max_resolution" and configs[1][2].encoding.max_resolution == 256
    rendered = init_render_config(configs[1][2], 3)
    assert rendered.encoding.init_scale == 1.0 and rendered.encoding.max_resolution == 256  # large init only for the render
    assert configs[1][2].encoding.init_scale == image_train_config("ngp").field.encoding.init_scale


def test_cli_train_with_fresh_logs_the_ranking_and_trains_the_pick(tmp_path, capsys):
    img = tmp_path / "img.png"
    img.write_bytes(encode_image(srgb_to_linear(torch.rand(24, 24, 3, generator=torch.Generator().manual_seed(1))), "png"))
    rc = main(["train", "image", "--data", str(img), "--method", "ff", "--fresh", "True", "--fresh-search.values", "1", "30",
               "--fresh-search.seeds", "2", "--steps", "3", "--batch-size", "64", "--field.network.width", "16",
               "--output-dir", str(tmp_path), "--name", "f", "--progress", "False"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "FreSh picked sigma=30" in err and "sigma=1" in err
    log = json.loads((tmp_path / "f" / "fresh.json").read_text())
    assert log["parameter"] == "encoding.sigma" and [r["value"] for r in log["ranking"]] == [30.0, 1.0]
    assert load_yaml((tmp_path / "f" / "config.yaml").read_text()).field.encoding.sigma == 30.0
    assert main(["train", "image", "--data", str(img), "--method", "sape", "--fresh", "True", "--output-dir", str(tmp_path)]) == 2
    assert "--fresh: FreSh has no tunable hyperparameter" in capsys.readouterr().err
