"""Camera rays: pinhole and OPENCV-distorted cameras, OpenGL camera-to-world poses, NDC.

Conventions (fixed once):
- Pixel ``(row i, column j)`` has its centre at ``(x, y) = (j + 0.5, i + 0.5)`` in pixel units, x right,
  y down (the COLMAP/OpenCV image convention).
- Intrinsics are ``(fx, fy, cx, cy)`` in pixels. Distortion parameters are ``(k1, k2, k3, k4, p1, p2)``
  (nerfstudio's layout of the OpenCV model): with normalized image coordinates ``(x, y)`` and
  ``r² = x² + y²``, ``d = 1 + k1 r² + k2 r⁴ + k3 r⁶ + k4 r⁸``,
  ``x_d = d·x + 2 p1 x y + p2 (r² + 2x²)``, ``y_d = d·y + 2 p2 x y + p1 (r² + 2y²)``.
  COLMAP's OPENCV model is this with ``k3 = k4 = 0``; its FULL_OPENCV rational terms are not supported.
- Camera-to-world matrices are OpenGL/Blender: the camera looks down its −z axis, y up, x right.
- Ray directions are unit vectors; ray distances ``t`` are Euclidean distances along them.
"""

import torch
from jaxtyping import Float
from torch import Tensor

N_DISTORTION = 6


def distort(xy: Float[Tensor, "n 2"], params: Float[Tensor, "n 6"]) -> Float[Tensor, "n 2"]:
    """Apply the radial-tangential distortion to normalized image coordinates (undistorted → distorted)."""
    x, y = xy[:, 0], xy[:, 1]
    k1, k2, k3, k4, p1, p2 = params.unbind(-1)
    r2 = x * x + y * y
    d = 1.0 + r2 * (k1 + r2 * (k2 + r2 * (k3 + r2 * k4)))
    xd = d * x + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
    yd = d * y + 2.0 * p2 * x * y + p1 * (r2 + 2.0 * y * y)
    return torch.stack([xd, yd], dim=-1)


def undistort(
    xy_distorted: Float[Tensor, "n 2"], params: Float[Tensor, "n 6"], iterations: int = 10
) -> Float[Tensor, "n 2"]:
    """Invert :func:`distort` with Newton's method (analytic 2×2 Jacobian), starting at the distorted point."""
    xd, yd = xy_distorted[:, 0], xy_distorted[:, 1]
    k1, k2, k3, k4, p1, p2 = params.unbind(-1)
    x, y = xd.clone(), yd.clone()
    for _ in range(iterations):
        r2 = x * x + y * y
        d = 1.0 + r2 * (k1 + r2 * (k2 + r2 * (k3 + r2 * k4)))
        dd_dr2 = k1 + r2 * (2.0 * k2 + r2 * (3.0 * k3 + r2 * 4.0 * k4))
        fx = d * x + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x) - xd
        fy = d * y + 2.0 * p2 * x * y + p1 * (r2 + 2.0 * y * y) - yd
        dd_dx, dd_dy = 2.0 * x * dd_dr2, 2.0 * y * dd_dr2
        fx_x = d + dd_dx * x + 2.0 * p1 * y + 6.0 * p2 * x
        fx_y = dd_dy * x + 2.0 * p1 * x + 2.0 * p2 * y
        fy_x = dd_dx * y + 2.0 * p2 * y + 2.0 * p1 * x
        fy_y = d + dd_dy * y + 2.0 * p2 * x + 6.0 * p1 * y
        det = fx_x * fy_y - fx_y * fy_x
        safe = det.abs() > 1e-12
        det = torch.where(safe, det, torch.ones_like(det))
        step_x = torch.where(safe, (fx * fy_y - fy * fx_y) / det, torch.zeros_like(det))
        step_y = torch.where(safe, (fy * fx_x - fx * fy_x) / det, torch.zeros_like(det))
        x, y = x - step_x, y - step_y
    return torch.stack([x, y], dim=-1)


def camera_directions(
    pixels: Float[Tensor, "n 2"],
    intrinsics: Float[Tensor, "n 4"],
    distortion: Float[Tensor, "n 6"] | None = None,
) -> Float[Tensor, "n 3"]:
    """Unnormalized ray directions in the OpenGL camera frame, ``(x, −y, −1)`` with ``z = −1``."""
    fx, fy, cx, cy = intrinsics.unbind(-1)
    xy = torch.stack([(pixels[:, 0] - cx) / fx, (pixels[:, 1] - cy) / fy], dim=-1)
    if distortion is not None:
        needs = distortion.abs().amax(dim=-1) > 0
        if bool(needs.any()):
            xy = torch.where(needs[:, None], undistort(xy, distortion), xy)
    return torch.stack([xy[:, 0], -xy[:, 1], -torch.ones_like(xy[:, 0])], dim=-1)


def generate_rays(
    camera_to_world: Float[Tensor, "n 4 4"],
    intrinsics: Float[Tensor, "n 4"],
    pixels: Float[Tensor, "n 2"],
    distortion: Float[Tensor, "n 6"] | None = None,
) -> tuple[Float[Tensor, "n 3"], Float[Tensor, "n 3"]]:
    """World-space ray origins and unit directions through pixel positions (one camera per ray)."""
    d_cam = camera_directions(pixels, intrinsics, distortion)
    rot = camera_to_world[:, :3, :3]
    d = torch.einsum("nij,nj->ni", rot, d_cam)
    d = d / d.norm(dim=-1, keepdim=True)
    return camera_to_world[:, :3, 3].clone(), d


def pixel_grid(height: int, width: int, device: torch.device | str = "cpu") -> Float[Tensor, "n 2"]:
    """Pixel centres ``(x, y)`` of a ``height × width`` image, row-major."""
    ys = torch.arange(height, dtype=torch.float32, device=device) + 0.5
    xs = torch.arange(width, dtype=torch.float32, device=device) + 0.5
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=-1)


def image_rays(
    camera_to_world: Float[Tensor, "4 4"],
    intrinsics: Float[Tensor, "4"],
    height: int,
    width: int,
    distortion: Float[Tensor, "6"] | None = None,
) -> tuple[Float[Tensor, "n 3"], Float[Tensor, "n 3"]]:
    """All rays of one camera, row-major ``(height·width, 3)``."""
    pix = pixel_grid(height, width, camera_to_world.device)
    n = pix.shape[0]
    dist = None if distortion is None else distortion[None].expand(n, N_DISTORTION)
    return generate_rays(camera_to_world[None].expand(n, 4, 4), intrinsics[None].expand(n, 4), pix, dist)


def ndc_rays(
    origins: Float[Tensor, "n 3"],
    directions: Float[Tensor, "n 3"],
    focal: float,
    width: int,
    height: int,
    near: float = 1.0,
) -> tuple[Float[Tensor, "n 3"], Float[Tensor, "n 3"]]:
    """Map forward-facing rays to normalized device coordinates (NeRF, Mildenhall et al. 2020, App. C).

    Assumes the cameras look roughly down world −z and the scene lies beyond ``near``. Origins are first
    moved onto the plane ``z = −near``; the NDC scene then fills ``[-1, 1]^3`` and ``t ∈ [0, 1]`` spans
    near to infinity. Returned directions are not normalized (so ``t`` is the NDC depth fraction).
    """
    t = -(near + origins[:, 2]) / directions[:, 2]
    o = origins + t[:, None] * directions
    ox, oy, oz = o.unbind(-1)
    dx, dy, dz = directions.unbind(-1)
    ax, ay = -2.0 * focal / width, -2.0 * focal / height
    o_ndc = torch.stack([ax * ox / oz, ay * oy / oz, 1.0 + 2.0 * near / oz], dim=-1)
    d_ndc = torch.stack([ax * (dx / dz - ox / oz), ay * (dy / dz - oy / oz), -2.0 * near / oz], dim=-1)
    return o_ndc, d_ndc
