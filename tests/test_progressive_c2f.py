"""Coarse-to-fine (BARF) window: weights equal the closed form, the encoding opens exactly as scheduled
(a function of the training progress, so a resumed run with more steps follows the longer schedule)."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from fieldforge.fields.encodings import FourierEncodingConfig, FrequencyEncodingConfig
from fieldforge.fields.encodings.coarse_to_fine import CoarseToFineFourierConfig, CoarseToFineFrequencyConfig, window_alpha


def barf_weight(step: int, max_steps: int, n_bands: int, k: int, start: float, end: float) -> float:
    """BARF's w_k(α) written out in float64: α = L·(t − s)/(e − s), w = (1 − cos(π·clamp(α − k, 0, 1)))/2."""
    alpha = n_bands * (step / max_steps - start) / (end - start)
    u = min(1.0, max(0.0, alpha - k))
    return (1.0 - math.cos(math.pi * u)) / 2.0


@pytest.mark.parametrize("start,end", [(0.0, 0.4), (0.1, 0.5)])
def test_frequency_window_weights_equal_the_closed_form(start, end):
    L, T = 6, 200
    cfg = CoarseToFineFrequencyConfig(n_frequencies=L, window_start=start, window_end=end)
    enc = cfg.setup(2)
    plain = FrequencyEncodingConfig(n_frequencies=L).setup(2)
    x = torch.rand(11, 2, generator=torch.Generator().manual_seed(0))
    full = plain(x)
    for step in (0, 1, 15, 20, 37, 50, 63, 80, 99, 100, 140, 200):
        enc.update(step / T)
        expected_w = np.array([barf_weight(step, T, L, k, start, end) for k in range(L)])
        np.testing.assert_allclose(enc.band_weights().double().numpy(), expected_w, atol=1e-7)
        # The encoding is the plain PE with band k (its 2d sin/cos features) scaled by w_k; the raw input is untouched.
        scale = torch.cat([torch.ones(2, dtype=torch.float64), torch.from_numpy(expected_w).repeat_interleave(4)])
        torch.testing.assert_close(enc(x).double(), full.double() * scale, atol=1e-6, rtol=0)


def test_window_is_closed_before_start_and_exactly_plain_after_end():
    T = 100
    enc = CoarseToFineFrequencyConfig(n_frequencies=4, window_start=0.2, window_end=0.6).setup(3)
    x = torch.rand(5, 3)
    enc.update(20 / T)  # progress = start → α = 0
    assert torch.all(enc(x)[:, 3:] == 0)
    torch.testing.assert_close(enc(x)[:, :3], 2 * x - 1)
    enc.update(60 / T)
    assert torch.equal(enc(x), FrequencyEncodingConfig(n_frequencies=4).setup(3)(x))


def test_fourier_window_opens_sorted_frequencies_low_to_high():
    T, m = 100, 16
    cfg = CoarseToFineFourierConfig(sigma=5.0, n_features=m, seed=3, window_start=0.0, window_end=0.5)
    enc = cfg.setup(2)
    norms = enc.B.norm(dim=-1)
    assert torch.all(norms[1:] >= norms[:-1])  # sorted, so the window order is magnitude order
    for step in (0, 7, 13, 25, 40, 50, 90):
        enc.update(step / T)
        w = enc.feature_weights(torch.rand(3, 2))
        expected = [barf_weight(step, T, m, j, 0.0, 0.5) for j in range(m)]
        np.testing.assert_allclose(w.double().numpy(), expected, atol=1e-7)
    plain = FourierEncodingConfig(sigma=5.0, n_features=m, seed=3).setup(2)
    x = torch.rand(8, 2)
    assert torch.equal(enc(x), plain(x))  # fully open after the window ends


def test_fourier_window_with_grouped_bands():
    T, m, L = 40, 12, 3
    enc = CoarseToFineFourierConfig(sigma=5.0, n_features=m, n_bands=L, window_end=1.0).setup(2)
    enc.update(18 / T)  # α = 3·0.45 = 1.35: band 0 open, band 1 at 35%, band 2 closed
    w = enc.feature_weights(torch.rand(1, 2))
    expected = np.repeat([barf_weight(18, T, L, k, 0.0, 1.0) for k in range(L)], m // L)
    np.testing.assert_allclose(w.double().numpy(), expected, atol=1e-7)
    assert 0 < expected[4] < 1 and expected[0] == 1 and expected[-1] == 0


def test_window_state_round_trips_through_the_state_dict():
    a = CoarseToFineFourierConfig(n_features=8).setup(2)
    a.update(17 / 100)
    b = CoarseToFineFourierConfig(n_features=8).setup(2)
    b.load_state_dict(a.state_dict(), strict=True)
    x = torch.rand(4, 2)
    assert float(b.progress) == 17 / 100 and b.alpha() == a.alpha() and torch.equal(a(x), b(x))


@pytest.mark.parametrize("cls", [CoarseToFineFrequencyConfig, CoarseToFineFourierConfig])
def test_resumed_with_a_longer_total_the_window_follows_the_longer_schedule(cls):
    """500 steps of a 500-step schedule, then continued to 1000 steps: from step 500 on, α (and the encoding)
    equal a fresh 1000-step run's at the same step, not the 500-step run's."""
    cfg = cls(n_features=16) if cls is CoarseToFineFourierConfig else cls(n_frequencies=6)
    cfg = replace(cfg, window_start=0.1, window_end=0.5)
    short, fresh = cfg.setup(2), cfg.setup(2)
    for step in range(1, 501):
        short.update(step / 500)
    assert short.alpha() == window_alpha(1.0, short.n_bands, 0.1, 0.5)  # the short schedule ran to its end
    resumed = cfg.setup(2)
    resumed.load_state_dict(short.state_dict(), strict=True)  # the checkpoint of step 500
    x = torch.rand(9, 2, generator=torch.Generator().manual_seed(4))
    for step in (501, 550, 620, 800, 1000):
        resumed.update(step / 1000)
        fresh.update(step / 1000)
        assert resumed.alpha() == fresh.alpha() == window_alpha(step / 1000, resumed.n_bands, 0.1, 0.5)
        assert torch.equal(resumed(x), fresh(x))
    resumed.update(501 / 1000)
    assert resumed.alpha() < short.alpha()  # at 50.1 % of the longer run the top band is not fully open yet


def test_bad_window_is_rejected():
    with pytest.raises(ValueError, match="window"):
        CoarseToFineFrequencyConfig(window_start=0.5, window_end=0.5).setup(2)
