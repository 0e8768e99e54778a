"""FreSh for 3D fields: ``fieldforge train sdf --fresh`` and ``fieldforge train nerf --fresh``.

SDF / occupancy: the target is the shape's signed distance (or inside indicator) sampled on a cube of
``side³`` cell centres of the unit box; each candidate's untrained field is sampled on the same cube and
the 3-D FreSh spectra (index-sum shells of ``|FFTₙ|``) are compared.

NeRF (as FreSh's torch-ngp fork): the untrained radiance field is volume-rendered from a few training
cameras at low resolution and compared with those training images, view by view.

Both reuse the generic ``fields.fresh.fresh_select``; the ranking is printed and written to ``fresh.json``,
and the chosen field is written to the run's ``config.yaml`` so a resumed run trains the same field.
"""

from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from fieldforge.app.fresh_image import record_fresh
from fieldforge.app.runs import RunDir
from fieldforge.data.errors import InputError
from fieldforge.fields.field import Field, FieldConfig
from fieldforge.fields.fresh import (FreshCandidate, FreshResult, FreshSearch, NerfFreshConfig, VolumeFreshConfig, candidate_configs,
                          fresh_select, init_render_config)



def _candidates(field_config: FieldConfig, fresh: FreshSearch) -> tuple[str, list[tuple[str, float, FieldConfig]]]:
    try:
        parameter, configs = candidate_configs(field_config, fresh.values)
    except LookupError as e:
        raise InputError(None, f"--fresh: {e}") from None
    return parameter.name, configs


# -- SDF / occupancy ---------------------------------------------------------------------------------
def cube_points(side: int) -> Tensor:
    """Cell centres of a ``side³`` grid over the unit cube, ``(side³, 3)`` indexed ``[x, y, z]``."""
    t = (torch.arange(side, dtype=torch.float32) + 0.5) / side
    return torch.stack(torch.meshgrid(t, t, t, indexing="ij"), -1).reshape(-1, 3)


def shape_target(cloud: Any, target: str, side: int, sign_rays: int = 11) -> Tensor:
    """The shape's SDF (or 0/1 inside indicator) on the ``side³`` cube, ``(side, side, side, 1)``.

    Meshes: exact distance and ray-parity sign (open3d). Point clouds: the nearest oriented point's rule
    (``pseudo_occupancy``), the same one the occupancy target trains on."""
    from fieldforge.data.pointclouds import MeshDistance, pseudo_occupancy

    pts = cube_points(side)
    if cloud.is_mesh:
        md = MeshDistance(cloud.points, cloud.triangles, sign_rays)
        sdf = md.signed_distance(pts)
        values = sdf if target == "sdf" else (sdf < 0).float()
    else:
        occ, sdf = pseudo_occupancy(pts, cloud.points, cloud.normals)
        values = sdf if target == "sdf" else occ.float()
    return values.reshape(side, side, side, 1)


def render_shape_at_init(field_config: FieldConfig, seed: int, side: int, max_steps: int, device: torch.device,
                         chunk: int = 65536) -> Tensor:
    """The untrained shape field (seeded) on the ``side³`` cube: SDF, or inside probability, ``(s, s, s, 1)``."""
    torch.manual_seed(seed)
    box = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    field = Field(init_render_config(field_config, seed), in_dim=3, bbox=box, max_steps=max_steps).to(device).eval()
    pts = cube_points(side).to(device)
    out = []
    with torch.no_grad():
        for i in range(0, pts.shape[0], chunk):
            o = field(pts[i : i + chunk])
            out.append((o.sdf if field_config.head == "sdf" else torch.sigmoid(o.occupancy_logit)).float().reshape(-1))
    return torch.cat(out).cpu().reshape(side, side, side, 1)


def select_shape_field(field_config: FieldConfig, fresh: VolumeFreshConfig, cloud: Any, target: str, max_steps: int,
                       device: torch.device, sign_rays: int = 11) -> tuple[FieldConfig, FreshResult]:
    """Rank the candidates of the field's tunable hyperparameter against the shape; returns the chosen config."""
    parameter, configs = _candidates(field_config, fresh)
    side = fresh.volume_side()
    goal = shape_target(cloud, target, side, sign_rays)

    def make(cfg: FieldConfig):
        return lambda seed: render_shape_at_init(cfg, seed, side, max_steps, device)

    cands = [FreshCandidate(label, value, make(cfg)) for label, value, cfg in configs]
    result = fresh_select(cands, goal, seeds=fresh.seeds, crop=min(fresh.crop, 3 * (side - 1)), side=side, spatial_dims=3,
                          parameter=parameter)
    return next(cfg for label, _, cfg in configs if label == result.best.label), result


def apply_fresh_sdf(config: Any, cloud: Any, run: RunDir, device: torch.device) -> Any:
    """``train sdf --fresh``: choose the field, print/write the ranking, write the updated config."""
    chosen, result = select_shape_field(config.field, config.fresh_search, cloud, config.target, config.trainer.steps, device,
                                        config.sampling.sign_rays)
    record_fresh(result, run, f"{config.target} on a {config.fresh_search.volume_side()}³ cube")
    config = replace(config, field=chosen)
    run.write_config(config)
    return config


# -- radiance fields ---------------------------------------------------------------------------------
def fresh_views(capture: Any, count: int) -> list[int]:
    """``count`` training views spread evenly over the training split."""
    train = capture.split["train"]
    count = max(1, min(count, len(train)))
    return [train[round(i * (len(train) - 1) / max(1, count - 1))] for i in range(count)] if count > 1 else [train[0]]


def _scaled_camera(capture: Any, index: int, side: int) -> tuple[Tensor, int, int]:
    """Intrinsics and size of view ``index`` rescaled so that its shorter side is ``side`` pixels."""
    cams = capture.cameras
    w, h = int(cams.width[index]), int(cams.height[index])
    s = side / min(w, h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    k = cams.intrinsics[index].clone().float()
    k[0], k[2] = k[0] * nw / w, k[2] * nw / w
    k[1], k[3] = k[1] * nh / h, k[3] * nh / h
    return k, nw, nh


def view_targets(capture: Any, views: list[int], side: int) -> Tensor:
    """The training images of ``views`` (composited over the background), antialias-resized as the renders, ``(v, h, w, 3)``."""
    out = []
    for i in views:
        _, nw, nh = _scaled_camera(capture, i, side)
        img = capture.composited(i).float().permute(2, 0, 1)[None]
        out.append(F.interpolate(img, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)[0].permute(1, 2, 0))
    return torch.stack(out)


def render_views_at_init(config: Any, field_config: FieldConfig, seed: int, capture: Any, views: list[int], side: int,
                         steps_per_ray: int, device: torch.device) -> Tensor:
    """Volume renders ``(v, h, w, 3)`` of the untrained radiance field (seeded) from the given training views."""
    from fieldforge.app.nerf_task import NerfModel, ndc_params

    torch.manual_seed(seed)
    render = replace(config.render, steps_per_ray=steps_per_ray)
    model = NerfModel(init_render_config(field_config, seed), capture.scene_box, render, max_steps=config.trainer.steps).to(device).eval()
    cams = capture.cameras
    ndc = ndc_params(capture.ndc, cams)
    out = []
    with torch.no_grad():
        for i in views:
            k, nw, nh = _scaled_camera(capture, i, side)
            dist = cams.distortion[i] if cams.has_distortion() else None
            rgb, _, _ = model.render_image(cams.camera_to_world[i], k, nw, nh, dist, capture.background, ndc, render.chunk)
            out.append(rgb)
    return torch.stack(out)


def select_radiance_field(config: Any, capture: Any, device: torch.device) -> tuple[FieldConfig, FreshResult]:
    fresh: NerfFreshConfig = config.fresh_search
    parameter, configs = _candidates(config.field, fresh)
    side = 2 * fresh.crop + 1
    views = fresh_views(capture, fresh.views)
    goal = view_targets(capture, views, side)

    def make(cfg: FieldConfig):
        return lambda seed: render_views_at_init(config, cfg, seed, capture, views, side, fresh.steps_per_ray, device)

    cands = [FreshCandidate(label, value, make(cfg)) for label, value, cfg in configs]
    result = fresh_select(cands, goal, seeds=fresh.seeds, crop=fresh.crop, side=side, spatial_dims=2, parameter=parameter)
    return next(cfg for label, _, cfg in configs if label == result.best.label), result


def apply_fresh_nerf(config: Any, capture: Any, run: RunDir, device: torch.device) -> Any:
    """``train nerf --fresh``: choose the field from untrained renders of training views, write ranking and config."""
    chosen, result = select_radiance_field(config, capture, device)
    fresh = config.fresh_search
    record_fresh(result, run, f"{min(fresh.views, len(capture.split['train']))} training views at {2 * fresh.crop + 1} px")
    config = replace(config, field=chosen)
    run.write_config(config)
    return config
