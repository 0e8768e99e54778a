import math

import jaxtyping
import numpy as np
import pytest
import torch

from fieldforge.fields.encodings import FourierEncodingConfig, FrequencyEncodingConfig, IdentityEncodingConfig
from fieldforge.fields.encodings.fourier import gaussian_frequencies


def test_frequency_encoding_matches_closed_form():
    enc = FrequencyEncodingConfig(n_frequencies=4).setup(2)
    x = torch.rand(7, 2, generator=torch.Generator().manual_seed(1))
    out = enc(x).double().numpy()
    p = 2 * x.double().numpy() - 1
    expected = [p]
    for k in range(4):
        expected += [np.sin(2**k * math.pi * p), np.cos(2**k * math.pi * p)]
    np.testing.assert_allclose(out, np.concatenate(expected, axis=1), atol=2e-5)
    assert enc.out_dim == 2 * (1 + 2 * 4)


def test_frequency_encoding_without_input_and_log_spaced_bands():
    enc = FrequencyEncodingConfig(n_frequencies=3, max_log2_frequency=4.0, include_input=False).setup(1)
    x = torch.tensor([[0.3]])
    p = 2 * 0.3 - 1
    mults = [math.pi * 2**e for e in (0.0, 2.0, 4.0)]
    expected = [f(m * p) for m in mults for f in (math.sin, math.cos)]
    np.testing.assert_allclose(enc(x)[0].numpy(), expected, atol=1e-5)


def test_fourier_features_closed_form_interleaved():
    cfg = FourierEncodingConfig(sigma=3.0, n_features=16, seed=5)
    enc = cfg.setup(2)
    x = torch.rand(9, 2, generator=torch.Generator().manual_seed(2))
    B = enc.B.double().numpy()
    angles = 2 * math.pi * x.double().numpy() @ B.T
    expected = np.stack([np.sin(angles), np.cos(angles)], axis=-1).reshape(9, -1)
    np.testing.assert_allclose(enc(x).double().numpy(), expected, atol=5e-5)
    assert enc.out_dim == 32


def test_fourier_frequencies_sorted_reproducible_and_scaled():
    b = gaussian_frequencies(4096, 2, sigma=10.0, seed=3)
    norms = b.norm(dim=-1)
    assert torch.all(norms[1:] >= norms[:-1])
    assert torch.equal(b, gaussian_frequencies(4096, 2, sigma=10.0, seed=3))
    assert abs(float(b.std()) - 10.0) < 0.5  # per-entry std is σ


def test_fourier_include_input_prepends_centred_coordinates():
    enc = FourierEncodingConfig(n_features=4, include_input=True).setup(3)
    x = torch.rand(5, 3)
    torch.testing.assert_close(enc(x)[:, :3], 2 * x - 1)


def test_identity_encoding_centres():
    enc = IdentityEncodingConfig().setup(2)
    torch.testing.assert_close(enc(torch.tensor([[0.0, 1.0]])), torch.tensor([[-1.0, 1.0]]))


@pytest.mark.parametrize("cfg", [IdentityEncodingConfig(), FrequencyEncodingConfig(), FourierEncodingConfig()])
def test_encodings_reject_wrong_shapes_via_jaxtyping(cfg):
    """pyproject's ``--jaxtyping-packages=fieldforge.fields,…`` checks the annotations of every public function
    in tests: a violation raises ``jaxtyping.TypeCheckError`` naming the function whose parameters are wrong."""
    enc = cfg.setup(2)
    forward = rf"checking the parameters of fieldforge\.fields\.encodings\.\w+\.{type(enc).__name__}\.forward"
    with pytest.raises(jaxtyping.TypeCheckError, match=forward):
        enc(torch.rand(4))  # 1-D input violates Float[Tensor, "n d"]
    with pytest.raises(jaxtyping.TypeCheckError, match=forward):
        enc(torch.ones(4, 2, dtype=torch.long))  # integer input violates Float[...]
    assert enc(torch.rand(4, 2)).shape == (4, enc.out_dim)  # the same call with a valid input passes the check
