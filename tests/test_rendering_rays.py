"""Rays: distortion model vs its inverse and vs COLMAP, projection round trips, NDC geometry."""

import math

import numpy as np
import pytest
import torch

from fieldforge.fields.rendering.rays import camera_directions, distort, generate_rays, image_rays, ndc_rays, pixel_grid, undistort


def _random_rotation(gen: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))[None]
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def test_undistort_inverts_distort():
    gen = torch.Generator().manual_seed(0)
    n = 2000
    xy = (torch.rand(n, 2, generator=gen, dtype=torch.float64) - 0.5) * 1.2
    params = torch.tensor([[-0.2, 0.05, -0.01, 0.002, 0.001, -0.002]], dtype=torch.float64).expand(n, 6)
    back = undistort(distort(xy, params), params)
    assert torch.allclose(back, xy, atol=1e-9)


def test_opencv_directions_match_colmap():
    pycolmap = pytest.importorskip("pycolmap", reason="pycolmap is the COLMAP reference")
    cam = pycolmap.Camera.create_from_model_name(1, "OPENCV", 50.0, 64, 48)
    fx, fy, cx, cy, k1, k2, p1, p2 = 55.0, 52.0, 31.0, 25.0, -0.12, 0.03, 0.002, -0.001
    cam.params = [fx, fy, cx, cy, k1, k2, p1, p2]
    pix = pixel_grid(48, 64).double()
    ref = np.asarray(cam.cam_from_img(pix.numpy()))  # OpenCV normalized coords (x right, y down)
    intr = torch.tensor([[fx, fy, cx, cy]], dtype=torch.float64).expand(pix.shape[0], 4)
    dist = torch.tensor([[k1, k2, 0.0, 0.0, p1, p2]], dtype=torch.float64).expand(pix.shape[0], 6)
    d = camera_directions(pix, intr, dist)
    assert torch.allclose(d[:, 2], -torch.ones_like(d[:, 2]))
    assert np.allclose(d[:, 0].numpy(), ref[:, 0], atol=1e-8)
    assert np.allclose(-d[:, 1].numpy(), ref[:, 1], atol=1e-8)


def test_rays_project_back_to_their_pixels():
    gen = torch.Generator().manual_seed(1)
    h, w = 7, 11
    rot = _random_rotation(gen)
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, :3] = rot
    c2w[:3, 3] = torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
    intr = torch.tensor([9.0, 10.0, 5.2, 3.9], dtype=torch.float64)
    o, d = image_rays(c2w, intr, h, w)
    assert torch.allclose(d.norm(dim=-1), torch.ones(h * w, dtype=torch.float64))
    points = o + 2.7 * d
    cam = (points - c2w[:3, 3]) @ rot  # world → camera (OpenGL)
    x = intr[0] * cam[:, 0] / -cam[:, 2] + intr[2]
    y = intr[1] * -cam[:, 1] / -cam[:, 2] + intr[3]
    assert torch.allclose(torch.stack([x, y], -1), pixel_grid(h, w).double(), atol=1e-9)


def test_centre_pixel_looks_down_minus_z():
    c2w = torch.eye(4)[None]
    o, d = generate_rays(c2w, torch.tensor([[10.0, 10.0, 2.0, 2.0]]), torch.tensor([[2.0, 2.0]]))
    assert torch.allclose(d, torch.tensor([[0.0, 0.0, -1.0]])) and torch.allclose(o, torch.zeros(1, 3))
    # pixel to the right of centre → +x, pixel below centre → −y (OpenGL camera frame)
    _, d = generate_rays(c2w.expand(2, 4, 4), torch.tensor([[10.0, 10.0, 2.0, 2.0]]).expand(2, 4), torch.tensor([[3.0, 2.0], [2.0, 3.0]]))
    assert d[0, 0] > 0 and abs(float(d[0, 1])) < 1e-7
    assert d[1, 1] < 0 and abs(float(d[1, 0])) < 1e-7


def test_ndc_maps_ray_points_onto_the_ndc_ray():
    gen = torch.Generator().manual_seed(2)
    n, focal, width, height, near = 50, 40.0, 64, 48, 1.0
    o = torch.randn(n, 3, generator=gen, dtype=torch.float64) * 0.1
    d = torch.randn(n, 3, generator=gen, dtype=torch.float64) * 0.2
    d[:, 2] = -1.0
    o_ndc, d_ndc = ndc_rays(o, d, focal, width, height, near)
    for depth in (1.5, 3.0, 30.0):
        t = (-depth - o[:, 2]) / d[:, 2]
        p = o + t[:, None] * d
        p_ndc = torch.stack(
            [-focal / (width / 2) * p[:, 0] / p[:, 2], -focal / (height / 2) * p[:, 1] / p[:, 2], 1 + 2 * near / p[:, 2]], -1
        )
        s = (p_ndc[:, 2] - o_ndc[:, 2]) / d_ndc[:, 2]
        assert torch.all((s >= 0) & (s <= 1))
        assert torch.allclose(o_ndc + s[:, None] * d_ndc, p_ndc, atol=1e-9)
    assert torch.allclose(o_ndc[:, 2], torch.full((n,), -1.0, dtype=torch.float64))
    assert math.isclose(float((o_ndc[:, 2] + d_ndc[:, 2]).mean()), 1.0, abs_tol=1e-9)
