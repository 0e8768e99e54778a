"""What the viewer draws for each kind of field, chosen through capabilities (never a concrete class):

- ``Renderable`` with the capture's cameras → volume rendering (rgb, depth, accumulation);
- ``HasSDF`` → sphere tracing of the zero level set, shaded by its normals (normals, shaded, depth, steps);
- an image field (2-D coordinates in [0,1]²) → a plane in the scene, rendered at the view's resolution, so
  zooming in evaluates the field more densely (super-resolution); PINs levels (``HasLevels``) and SAPE's
  frequency map (``HasProgressMap``) as extra modes.

Every renderer works in horizontal bands and asks ``cancelled()`` between them, so a moving camera interrupts
a slow refinement; ``guard()`` is entered around each band (the training lock while training).
"""

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from fieldforge.app.export_views import is_scene, scene_of
from fieldforge.app.loader import LoadedRun
from fieldforge.app.viewer.cameras import View, intrinsics_for
from fieldforge.fields import kilonerf as kn
from fieldforge.fields.capabilities import HasLevels, HasProgressMap, HasSDF
from fieldforge.fields.wrapping import unwrap
from torch import Tensor

Guard = Callable[[], contextlib.AbstractContextManager]
BAND_PIXELS = 4096
"""Pixels per band: the granularity of cancellation and of the training lock."""


def no_guard() -> contextlib.AbstractContextManager:
    return contextlib.nullcontext()


@dataclass
class Home:
    """Where a new client's camera starts, in the model's frame."""

    position: np.ndarray
    look_at: np.ndarray
    up: np.ndarray


@dataclass
class FieldRenderer:
    """Base: renders one view in bands; subclasses fill ``render_band`` and ``finish``."""

    loaded: LoadedRun
    modes: tuple[str, ...] = ("rgb",)
    home: Home = field(default_factory=lambda: Home(np.array([0.0, 0.0, 2.0]), np.zeros(3), np.array([0.0, 1.0, 0.0])))

    @property
    def model(self) -> torch.nn.Module:
        return self.loaded.model

    @property
    def device(self) -> torch.device:
        try:
            return next(self.model.parameters()).device
        except StopIteration:
            return torch.device("cpu")

    def render(self, view: View, width: int, height: int, mode: str, cancelled: Callable[[], bool] = lambda: False,
               guard: Guard = no_guard) -> np.ndarray | None:
        """An ``(height, width, 3)`` uint8 frame, or ``None`` when ``cancelled()`` became true midway."""
        intr = intrinsics_for(view.fov_y, width, height)
        rows = max(1, BAND_PIXELS // max(1, width))
        parts: list[dict[str, Tensor]] = []
        for r0 in range(0, height, rows):
            if cancelled():
                return None
            r1 = min(height, r0 + rows)
            band = intr.clone()
            band[3] -= r0  # the band is the same pinhole camera with its principal point shifted up
            with guard(), torch.no_grad(), truncated_levels(self.model, mode):
                parts.append(self.render_band(view.c2w, band, width, r1 - r0, mode))
        out = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        return to_uint8(self.finish(out, mode))

    def render_band(self, c2w: Tensor, intrinsics: Tensor, width: int, height: int, mode: str) -> dict[str, Tensor]:
        raise NotImplementedError

    def finish(self, out: dict[str, Tensor], mode: str) -> Tensor:
        return out["rgb"]


@contextlib.contextmanager
def truncated_levels(model: torch.nn.Module, mode: str):
    """Mode "level k": the model's level hierarchies (PINs) evaluate levels 1..k only, for this band."""
    parts = level_parts(model) if mode.startswith("level ") else []
    try:
        for part in parts:
            part.set_level(int(mode.split()[-1]))
        yield
    finally:
        for part in parts:
            part.set_level(None)


def to_uint8(img: Tensor) -> np.ndarray:
    return (img.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()


def colourize_depth(depth: Tensor, valid: Tensor) -> Tensor:
    """Depth as grey (near = bright), empty pixels black: the same mapping as ``export render --depth``."""
    d = depth.clone()
    if bool(valid.any()):
        lo, hi = float(d[valid].min()), float(d[valid].max())
        d = 1.0 - (d - lo) / max(hi - lo, 1e-9)
    d = torch.where(valid, d, torch.zeros_like(d)).clamp(0, 1)
    return d[..., None].expand(*d.shape, 3)


def camera_rays(c2w: Tensor, intrinsics: Tensor, width: int, height: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Pinhole rays through pixel centres (OpenGL camera: x right, y up, looks down −z); unit directions."""
    fx, fy, cx, cy = (float(v) for v in intrinsics)
    ys, xs = torch.meshgrid(torch.arange(height, device=device) + 0.5, torch.arange(width, device=device) + 0.5, indexing="ij")
    d_cam = torch.stack([(xs - cx) / fx, -(ys - cy) / fy, -torch.ones_like(xs)], dim=-1).reshape(-1, 3)
    m = c2w.to(device)
    d = d_cam @ m[:3, :3].T
    d = d / d.norm(dim=-1, keepdim=True)
    return m[:3, 3].expand_as(d), d


@dataclass
class RadianceRenderer(FieldRenderer):
    """Volume rendering of a radiance field with the capture's background and NDC settings."""

    background: Tensor = field(default_factory=lambda: torch.ones(3))
    ndc: tuple[float, float, float] | None = None
    chunk: int = 8192

    def render_band(self, c2w, intrinsics, width, height, mode):
        rgb, depth, acc = self.model.render_image(c2w, intrinsics, width, height, None, self.background, self.ndc, self.chunk)
        out = {"rgb": rgb, "depth": depth, "acc": acc}
        if mode == "tile id":  # the tile of each ray's expected surface point (normalized frame)
            o, d = camera_rays(c2w, intrinsics, width, height, self.device)
            p = o + depth.reshape(-1, 1).to(o) * d
            out["tile"] = kn.tile_colors(kn.tile_ids(self.model, p)).reshape(height, width, 3).cpu()
        return out

    def finish(self, out, mode):
        if mode == "tile id":
            opaque = (out["acc"] > 0.5)[..., None]
            return torch.where(opaque, out["tile"] * (0.35 + 0.65 * out["rgb"].mean(-1, keepdim=True)), out["rgb"])
        if mode == "depth":  # opaque pixels (or, early in training, the most opaque half)
            return colourize_depth(out["depth"], out["acc"] > min(0.5, 0.5 * float(out["acc"].max())))
        if mode == "accumulation":
            return out["acc"][..., None].expand(*out["acc"].shape, 3)
        return out["rgb"]


@dataclass
class SDFRenderer(FieldRenderer):
    """The zero set of a shape field inside the unit cube, shaded by finite-difference normals: sphere tracing
    of a signed distance (``HasSDF``), or, for an occupancy field (``occupancy_logit``, not a distance), a
    fixed-step march to the first crossing refined by bisection."""

    lo: float = 0.0
    hi: float = 1.0
    steps: int = 64
    epsilon: float = 1e-3
    occupancy: bool = False
    """The model gives ``occupancy_logit`` (inside > 0) instead of a signed distance."""

    def signed(self, points: Tensor) -> Tensor:
        """Negative inside: the signed distance, or minus the occupancy logit."""
        if self.occupancy:
            return -self.model(points).occupancy_logit.float()
        return self.model.signed_distance(points).float()

    def render_band(self, c2w, intrinsics, width, height, mode):
        dev = self.device
        o, d = camera_rays(c2w, intrinsics, width, height, dev)
        t0, t1 = box_interval(o, d, self.lo - 0.02, self.hi + 0.02)
        t, hit, used = (self.march if self.occupancy else self.sphere_trace)(o, d, t0, t1)
        if mode.endswith(" slice"):
            return self.slice_band(o, d, width, height)
        p = o + t[:, None] * d
        normals = torch.zeros_like(p)
        if bool(hit.any()):
            normals[hit] = self.normals(p[hit])
        return {"hit": hit.reshape(height, width), "normal": normals.reshape(height, width, 3),
                "depth": t.reshape(height, width), "steps": used.reshape(height, width), "dir": d.reshape(height, width, 3),
                "point": p.reshape(height, width, 3),
                **({"tile": kn.tile_colors(kn.tile_ids(self.model, p)).reshape(height, width, 3).cpu()} if mode == "tile id" else {})}

    def sphere_trace(self, o: Tensor, d: Tensor, t0: Tensor, t1: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Distances along the rays, hit mask and steps used: steps of 0.9 × the signed distance."""
        t = t0.clone()
        hit = torch.zeros_like(t, dtype=torch.bool)
        alive = t0 < t1
        used = torch.zeros_like(t)
        for i in range(self.steps):
            if not bool(alive.any()):
                break
            idx = alive.nonzero().squeeze(-1)
            s = self.signed(o[idx] + t[idx, None] * d[idx])
            now_hit = s.abs() < self.epsilon
            hit[idx[now_hit]] = True
            t[idx] = t[idx] + 0.9 * s.clamp(min=-0.05)
            used[idx] = i + 1
            alive[idx] = ~now_hit & (t[idx] < t1[idx]) & (t[idx] >= t0[idx] - 0.05)
        return t, hit, used

    def march(self, o: Tensor, d: Tensor, t0: Tensor, t1: Tensor, samples: int = 128, bisections: int = 6) -> tuple[Tensor, Tensor, Tensor]:
        """The first outside→inside crossing on ``samples`` even steps through the box, refined by bisection."""
        n = o.shape[0]
        frac = (torch.arange(samples + 1, device=o.device, dtype=o.dtype) / samples)
        ts = t0[:, None] + (t1 - t0).clamp(min=0)[:, None] * frac  # (n, samples+1)
        vals = self.signed((o[:, None] + ts[..., None] * d[:, None]).reshape(-1, 3)).reshape(n, samples + 1)
        inside = vals < 0
        first = torch.where(inside.any(-1), inside.float().argmax(-1), torch.full((n,), samples + 1, device=o.device))
        hit = (first > 0) & (first <= samples) & (t0 < t1)
        k = first.clamp(1, samples)
        lo_t, hi_t = ts.gather(1, (k - 1)[:, None])[:, 0], ts.gather(1, k[:, None])[:, 0]
        idx = hit.nonzero().squeeze(-1)
        a, b = lo_t[idx], hi_t[idx]
        for _ in range(bisections):
            mid = 0.5 * (a + b)
            out = self.signed(o[idx] + mid[:, None] * d[idx]) >= 0
            a, b = torch.where(out, mid, a), torch.where(out, b, mid)
        t = torch.where(hit, hi_t, t1)
        t[idx] = 0.5 * (a + b)
        return t, hit, torch.where(hit, k.float(), torch.full_like(t, float(samples)))

    def slice_band(self, o: Tensor, d: Tensor, width: int, height: int) -> dict[str, Tensor]:
        """The signed distance on the plane z = ½ through the cube (red outside, blue inside, dark bands every
        1/20 of the cube, black on the surface); white where a ray misses the slice."""
        dz = torch.where(d[:, 2].abs() < 1e-9, torch.full_like(d[:, 2], 1e-9), d[:, 2])
        t = (0.5 - o[:, 2]) / dz
        p = o + t[:, None] * d
        on = (t > 0) & (p[:, :2] >= self.lo).all(-1) & (p[:, :2] <= self.hi).all(-1)
        rgb = torch.ones(o.shape[0], 3, device=o.device)
        if bool(on.any()):
            sd = self.signed(p[on])
            a = (sd.abs() * 4).clamp(0, 1)[:, None]
            base = torch.where(sd[:, None] > 0, torch.tensor([0.85, 0.35, 0.25], device=o.device), torch.tensor([0.25, 0.45, 0.85], device=o.device))
            col = (1 - a) * 0.97 + a * base
            bands = 0.75 + 0.25 * torch.cos(sd * 40 * math.pi).abs()[:, None]
            col = col * bands
            col[sd.abs() < 0.004] = 0.0
            rgb[on] = col
        return {"slice": rgb.reshape(height, width, 3).cpu()}

    def normals(self, p: Tensor) -> Tensor:
        h = 1e-3
        grads = []
        for axis in range(3):
            e = torch.zeros(3, device=p.device)
            e[axis] = h
            grads.append(self.signed(p + e) - self.signed(p - e))
        g = torch.stack(grads, dim=-1)
        return g / g.norm(dim=-1, keepdim=True).clamp(min=1e-12)

    def finish(self, out, mode):
        if mode.endswith(" slice"):
            return out["slice"]
        hit, n = out["hit"], out["normal"]
        bg = torch.ones(*hit.shape, 3)
        if mode == "depth":
            return colourize_depth(out["depth"], hit)
        if mode == "steps":
            s = out["steps"] / self.steps
            return torch.stack([s, 0.3 * torch.ones_like(s), 1 - s], dim=-1)
        if mode == "SAPE map":  # the surface coloured by its cell's share of unmasked frequencies (dark: few)
            pm = progress_map(self.model, 3)
            assert pm is not None
            res = pm.shape[0]
            ijk = (out["point"].to(pm.device) * res).long().clamp(0, res - 1)
            m = pm[ijk[..., 0], ijk[..., 1], ijk[..., 2]].float().cpu()
            return torch.where(hit[..., None], torch.stack([m, 0.25 + 0.5 * m, 1 - m], dim=-1), bg)
        if mode == "shaded" or mode.startswith("level ") or mode == "tile id":
            lambert = (-(n * out["dir"]).sum(-1)).clamp(min=0)  # headlight
            base = out["tile"] if mode == "tile id" else torch.tensor([0.85, 0.8, 0.75])
            shade = (0.15 + 0.85 * lambert)[..., None] * base
            return torch.where(hit[..., None], shade, bg)
        return torch.where(hit[..., None], 0.5 + 0.5 * n, bg)


def box_interval(o: Tensor, d: Tensor, lo: float, hi: float) -> tuple[Tensor, Tensor]:
    """Entry and exit distances of rays through the box ``[lo, hi]³`` (entry clamped at 0; exit < entry: miss)."""
    inv = 1.0 / torch.where(d.abs() < 1e-9, torch.full_like(d, 1e-9), d)
    a, b = (lo - o) * inv, (hi - o) * inv
    t0 = torch.minimum(a, b).amax(-1).clamp(min=0)
    t1 = torch.maximum(a, b).amin(-1)
    return t0, t1


@dataclass
class ImageRenderer(FieldRenderer):
    """An image field drawn on the plane z = 0 (height 1, width = aspect, y up), evaluated where each
    pixel's ray meets it: the field is sampled at the view's resolution."""

    height_px: int = 1
    width_px: int = 1
    channels: int = 3
    linear: bool = False

    @property
    def plane_aspect(self) -> float:
        return self.width_px / self.height_px

    def render_band(self, c2w, intrinsics, width, height, mode):
        dev = self.device
        o, d = camera_rays(c2w, intrinsics, width, height, dev)
        t = -o[:, 2] / torch.where(d[:, 2].abs() < 1e-9, torch.full_like(d[:, 2], -1e-9), d[:, 2])
        p = o + t[:, None] * d
        u = p[:, 0] / self.plane_aspect + 0.5
        v = 0.5 - p[:, 1]
        inside = (t > 0) & (u >= 0) & (u <= 1) & (v >= 0) & (v <= 1)
        rgb = torch.full((o.shape[0], 3), 0.18, device=dev)
        if bool(inside.any()):
            uv = torch.stack([u[inside], v[inside]], dim=-1)
            rgb[inside] = self.values(uv, mode)
        return {"rgb": rgb.reshape(height, width, 3).cpu()}

    def values(self, uv: Tensor, mode: str) -> Tensor:
        if mode == "tile id":
            return kn.tile_colors(kn.tile_ids(self.model, uv)).to(uv.device)
        if mode == "SAPE map":
            pm = progress_map(self.model, 2)
            assert pm is not None
            res = pm.shape[0]
            ij = (uv * res).long().clamp(0, res - 1)
            m = pm.to(uv.device)[ij[:, 0], ij[:, 1]].float()
            return m[:, None].expand(-1, 3)
        vals = self.model(uv).values.float().clamp(0, 1)
        if vals.shape[-1] == 1:
            vals = vals.expand(-1, 3)
        vals = vals[:, :3]
        if self.linear:
            vals = torch.where(vals <= 0.0031308, 12.92 * vals, 1.055 * vals.clamp(min=0.0031308) ** (1 / 2.4) - 0.055)
        return vals


def level_parts(model: torch.nn.Module) -> list:
    m = unwrap(model)
    m = getattr(m, "field", m)  # a radiance model's field
    return [part for part in (getattr(m, "network", None), getattr(m, "encoding", None)) if isinstance(part, HasLevels)]


def progress_map(model: torch.nn.Module, dims: int) -> Tensor | None:
    """SAPE's per-cell progress of a ``dims``-D field (``None``: the model has none)."""
    m = unwrap(model)
    enc = getattr(getattr(m, "field", m), "encoding", None)
    if isinstance(enc, HasProgressMap):
        pm = enc.progress_map()
        return pm if pm.dim() == dims else None
    return None


def field_modes(model: torch.nn.Module, dims: int) -> list[str]:
    """The render modes a field adds through its capabilities: PINs levels, SAPE's map."""
    modes = []
    parts = level_parts(model)
    if parts:
        modes += [f"level {i}" for i in range(1, min(p.n_levels for p in parts) + 1)]
    if progress_map(model, dims) is not None:
        modes.append("SAPE map")
    if kn.has_tiles(model):
        modes.append("tile id")
    return modes


def has_occupancy_3d(model: torch.nn.Module) -> bool:
    """A field of 3-D points with an occupancy logit output (the SDF task's occupancy head)."""
    try:
        with torch.no_grad():
            probe = model(torch.full((1, 3), 0.5, device=next(model.parameters()).device))
    except Exception:  # not a 3-D point field
        return False
    return getattr(probe, "occupancy_logit", None) is not None


def make_renderer(loaded: LoadedRun) -> FieldRenderer:
    """The renderer for a loaded run, from its model's capabilities and the run's record of its input."""
    model, info = unwrap(loaded.model), loaded.info
    if is_scene(loaded):
        scene = scene_of(loaded)
        cams = scene.cameras
        train = info["split"].get("train") or list(range(len(cams)))
        c2w = cams.camera_to_world.double().numpy()
        box = np.asarray(info["scene_box"], dtype=np.float64)
        centre = box.mean(axis=0)
        ups = c2w[train, :3, 1].mean(axis=0)
        up = ups / max(np.linalg.norm(ups), 1e-9)
        first = c2w[train[0]]
        back = centre + 1.3 * (first[:3, 3] - centre)  # behind the first camera, so its own frustum is in view
        home = Home(back, centre, up)
        modes = ("rgb", "depth", "accumulation", *[m for m in field_modes(model, 3) if m.startswith("level ") or m == "tile id"])
        return RadianceRenderer(loaded, modes, home, scene.background, scene.ndc, scene.chunk)
    if isinstance(model, HasSDF) or has_occupancy_3d(model):
        home = Home(np.array([1.6, 1.3, 2.0]), np.array([0.5, 0.5, 0.5]), np.array([0.0, 1.0, 0.0]))
        occupancy = not isinstance(model, HasSDF)
        modes = ("normals", "shaded", "depth", "steps", "occupancy slice" if occupancy else "SDF slice", *field_modes(model, 3))
        return SDFRenderer(loaded, modes, home, occupancy=occupancy)
    if {"height", "width", "channels"} <= set(info):
        modes = ["rgb", *field_modes(model, 2)]
        h, w = int(info["height"]), int(info["width"])
        dist = 0.5 / math.tan(math.radians(25)) * 1.1
        home = Home(np.array([0.0, 0.0, dist]), np.zeros(3), np.array([0.0, 1.0, 0.0]))
        return ImageRenderer(loaded, tuple(modes), home, h, w, int(info["channels"]), info.get("transfer", "srgb") != "srgb")
    raise ValueError(f"the viewer cannot draw this {loaded.kind} run: its model is neither renderable, an SDF nor an image field")
