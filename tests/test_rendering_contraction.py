"""Scene contraction (mip-NeRF 360) as named properties."""

import pytest
import torch

from fieldforge.fields.rendering.contraction import contract, lindisp_steps, uncontract


@pytest.mark.parametrize("order", ["l2", "linf"])
def test_contract_is_bounded_identity_inside_and_invertible(order):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5000, 3, generator=gen, dtype=torch.float64) * torch.logspace(-2, 4, 5000, dtype=torch.float64)[:, None]
    y = contract(x, order)
    norm = (lambda v: v.norm(dim=-1)) if order == "l2" else (lambda v: v.abs().amax(dim=-1))
    assert torch.all(norm(y) < 2.0)
    inside = norm(x) <= 1
    assert torch.equal(y[inside], x[inside])
    far = norm(x) < 1e3  # the inverse is ill-conditioned as ‖y‖ → 2
    assert torch.allclose(uncontract(y[far], order), x[far], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("order", ["l2", "linf"])
def test_contract_is_continuous_and_gradients_are_finite(order):
    d = torch.nn.functional.normalize(torch.randn(100, 3, dtype=torch.float64), dim=-1)
    if order == "linf":
        d = d / d.abs().amax(-1, keepdim=True)
    a, b = contract(d * (1 - 1e-9), order), contract(d * (1 + 1e-9), order)
    assert torch.allclose(a, b, atol=1e-7)
    x = (torch.randn(200, 3, dtype=torch.float64) * 10).requires_grad_(True)
    contract(x, order).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_lindisp_steps_are_monotone_and_reach_far():
    near = torch.tensor([0.1, 0.5])
    for stratified in (False, True):
        e = lindisp_steps(near, 64, far=1000.0, stratified=stratified, generator=torch.Generator().manual_seed(0))
        assert e.shape == (2, 65) and torch.all(e[:, 1:] > e[:, :-1])
        assert torch.allclose(e[:, 0], near) and torch.allclose(e[:, -1], torch.full((2,), 1000.0))
        if not stratified:
            assert torch.allclose(e[:, 32], near + 1.0)
