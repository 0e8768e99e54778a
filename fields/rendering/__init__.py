"""Functional rendering: rays, packed sampling with an occupancy grid, volume rendering, contraction.

Everything here takes callables (``sigma_fn``, ``rgb_sigma_fn``, ``occupied_fn``), never fields, so
NeRF, SDF-as-density and distilled students share one sampler and one renderer.
"""

from fieldforge.fields.rendering.contraction import contract, lindisp_steps, uncontract
from fieldforge.fields.rendering.occupancy_grid import OccupancyGrid
from fieldforge.fields.rendering.rays import camera_directions, distort, generate_rays, image_rays, ndc_rays, pixel_grid, undistort
from fieldforge.fields.rendering.sampling import (
    RaySamples,
    edge_samples,
    filter_samples,
    march_rays,
    ray_aabb_intersect,
    uniform_samples,
)
from fieldforge.fields.rendering.volume import RenderOutputs, accumulate_along_rays, volume_render
from fieldforge.fields.rendering.weights import ray_offsets, render_weights

__all__ = [
    "OccupancyGrid",
    "RaySamples",
    "RenderOutputs",
    "accumulate_along_rays",
    "camera_directions",
    "contract",
    "distort",
    "edge_samples",
    "filter_samples",
    "generate_rays",
    "image_rays",
    "lindisp_steps",
    "march_rays",
    "ndc_rays",
    "pixel_grid",
    "ray_aabb_intersect",
    "ray_offsets",
    "render_weights",
    "uncontract",
    "undistort",
    "uniform_samples",
    "volume_render",
]
