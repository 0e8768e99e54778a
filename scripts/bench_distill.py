"""Distillation benchmark: teacher ngp → students, against the same students trained from scratch.

For each NeRF scene (the procedural capture, lego_half): a teacher ``ngp`` run, then per student
(``nerf``, ``kilonerf``, ``ff``, ``cam``, ``rbf``): test PSNR/SSIM and fidelity to the teacher after
``fieldforge distill``, the distillation time, the same student trained from scratch on the images for the
same wall time, and the from-scratch time to reach the teacher's PSNR − 0.5 dB (``> cap`` when it does not
within ``--scratch-cap`` seconds); render time per test frame (same view, same sample budget) of
``kilonerf`` vs its teacher and vs the ``nerf`` student. Images (Kodak): ``ngp`` → ``ff``, ``siren``,
``kilonerf``. SDF (bunny): ``ngp`` → ``ff``, ``kilonerf`` (Chamfer).

Everything goes through the public API (``train``, ``distill_config``, ``load_run``, ``fieldforge.fields.kilonerf``).
Writes a table and JSON to scripts/results/bench_distill[-TAG].json (machine and options, no local paths).

    python scripts/bench_distill.py                       # the full configuration (hours on a 2-core CPU)
    python scripts/bench_distill.py --quick --tag quick   # synthetic capture + one Kodak image + bunny, short stages

Split into parts (``--scenes``/``--students``/``--images``/``--shapes`` per part, one ``--tag`` each) that share
their teachers through ``--work DIR`` (a teacher is trained once, its time recorded beside it). lego_half on
a 2-core CPU: ``--nerf-downscale 8`` (50×50 views). The runs of the committed ``bench_distill-{lego_half-x8,
synthetic}.json`` (session 7: the rounds renderer) and ``bench_distill-images-sdf.json`` (session 6):

    COMMON="--images --shapes --samples 4096 --feature-steps 0 --point-steps 60 --render-steps 120 \
            --tile-steps 300 --finetune-steps 40 --scratch-cap 0 --work /tmp/distill-work --render-scales 1 4"
    python scripts/bench_distill.py $COMMON --scenes lego_half --nerf-downscale 8 --teacher-steps 250 \
        --students kilonerf nerf ff cam rbf --tag lego_half-x8
    python scripts/bench_distill.py $COMMON --scenes synthetic --teacher-steps 1000 --students kilonerf nerf cam --tag synthetic
    python scripts/bench_distill.py --scenes --images kodim01 kodim02 --shapes bunny \
        --scratch-cap 60 --scratch-eval-every 100 --tag images-sdf

Render-only reruns (``bench_distill-{lego_half-x8,synthetic}-render.json``, last run in session 9): the first two commands
with ``--work`` holding their teachers, ``--scratch 0 --students kilonerf nerf`` and the tags ``lego_half-x8-render`` and
``synthetic-render``.

Render times are best of 10 after 2 warm-up frames (2 after 1 for ``--render-scales`` above 1) under OpenMP's default wait policy, as the CLI
runs (``OMP_WAIT_POLICY=PASSIVE``, which the viewer sets, slows a CPU frame 1.5–2.5×). From session 9 a scene's runs are
timed together once all are trained, in turns (a warm-up frame and 2 timed frames of each run per turn, 5 turns; at 4×: 1
and 1, 2 turns): this machine's speed drifts by up to 1.6× over minutes, and turns make every run meet the same drift.

``--to-target`` measures, per student, the training time to the teacher's PSNR − 0.5 dB distilled and from
scratch (``--scratch-cap`` bounds the latter, ``--scratch-steps`` sets its schedule; when it does not reach the
target the ratio is a lower bound); session 6's ``bench_distill-synthetic-to-target.json``: ``--scenes synthetic
--teacher-steps 1000 --students kilonerf --to-target --distill-eval-every 25 --scratch-cap 600 --scratch-eval-every 25``
with the stage options of ``COMMON``; session 8's ``bench_distill-lego_half-x8-to-target.json``: ``--scenes lego_half
--nerf-downscale 8 --teacher-steps 250 --students kilonerf --to-target --tile-steps 600 --finetune-steps 200
--distill-eval-every 50 --scratch-cap 3300 --scratch-steps 8400 --scratch-eval-every 100`` with the other stage
options of ``COMMON``; session 9's ``bench_distill-synthetic-to-target-students.json``: ``--scenes synthetic --teacher-steps
1000 --samples 4096 --feature-steps 0 --students cam nerf ff rbf --to-target --distill-eval-every 50 --scratch-cap 240
--scratch-steps 1200 --scratch-eval-every 50``.
"""

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import ROOT, Probe, cpu_name, public_args, train_probed
from fieldforge.app.distill.teacher import load_teacher
from fieldforge.app.loader import load_run
from fieldforge.app.tasks import get_task
from fieldforge.app.tasks.distill import DistillOptions, distill_config
from fieldforge.app.train import train

SHARED = ROOT.parent / "shared" / "data"
QUIET = {"eval_every": 0, "checkpoint_every": 0, "log_every": 10**9, "progress": False}


def nerf_teacher_config(data: Path, steps: int, out: Path, device: str, downscale: int = 1, name: str = "teacher"):
    task = get_task("nerf")
    config = task.sized_for(task.preset_config("ngp"), torch.device(device))
    return replace(config, data=data, eval_views=2, capture=replace(config.capture, downscale=downscale),
                   trainer=replace(config.trainer, steps=steps, output_dir=out, name=name, device=device, **QUIET))


def teacher_run(config, work: Path | None):
    """Train the teacher, or reuse the finished one in ``work`` (``--work``: parts of a split benchmark share
    it; its final metrics and training time are kept beside it in ``<name>.json``)."""
    record = Path(config.trainer.output_dir) / f"{config.trainer.name}.json"
    if work is not None and record.exists():
        return Path(config.trainer.output_dir) / config.trainer.name, json.loads(record.read_text())
    run, m = train(config)
    if work is not None:
        record.write_text(json.dumps({k: v for k, v in m.items() if isinstance(v, (int, float, str))}))
    return run.path, m


def time_to_target(config, target: float, cap_s: float, eval_every: int, key: str = "psnr", lower_is_better: bool = False) -> dict:
    """Train ``config``, evaluated every ``eval_every`` steps, until ``key`` reaches ``target``, its last step, or
    ``cap_s`` seconds of training. Returns ``seconds`` of training to the target (None: not reached), the
    ``ran_seconds`` it trained in all, the ``best`` value and the ``curve`` of (step, seconds, value)."""
    def reached(r: dict) -> bool:
        return r[key] <= target if lower_is_better else r[key] >= target

    probe = Probe(budget_s=cap_s, eval_every=eval_every, stop_when=reached)
    train_probed(config, probe)
    values = [r[key] for r in probe.curve]
    return {"seconds": probe.seconds if probe.stopped_by == "target" else None, "ran_seconds": probe.seconds,
            "best": (min if lower_is_better else max)(values, default=math.nan),
            "curve": [(r["step"], round(r["seconds"], 1), round(r[key], 3)) for r in probe.curve]}


def probed_run(config, name: str, steps: int = 0):
    """``config`` as a run named ``name`` that a probe stops: open-ended (``steps`` 0: the learning rate stays near
    its peak, the schedule spread over 10⁷ steps) or ``steps`` long (its schedule decays over them, as a user's run of
    that length would)."""
    return replace(config, trainer=replace(config.trainer, steps=steps or 10**7, name=name))


def scratch(config, budget_s: float, target: float | None, cap_s: float, eval_every: int, key: str = "psnr", lower_is_better: bool = False) -> dict:
    """The student trained from scratch: its metric after ``budget_s`` of training, and the time to ``target``."""
    out: dict = {}
    probe = Probe(budget_s=budget_s)
    train_probed(probed_run(config, "scratch-eq"), probe)
    out["equal_time_" + key] = (probe.final or {}).get(key, math.nan)
    if target is not None and cap_s > 0:  # --scratch-cap 0: equal time only
        t = time_to_target(probed_run(config, "scratch-target"), target, cap_s, eval_every, key, lower_is_better)
        out["to_target_seconds"], out["to_target_best_" + key] = t["seconds"], t["best"]
    return out


def distill(teacher_dir: Path, method: str, options: DistillOptions, out: Path, device: str, overrides: dict | None = None):
    teacher = load_teacher(teacher_dir, device)
    config = distill_config(teacher, method, options, output_dir=out, name=f"distill-{method}", device=device, **QUIET)
    if overrides:
        config = replace(config, **overrides)
    run, metrics = train(config)
    return run, metrics, config


def scratch_config(data: Path, method: str, config):
    """The student as distilled (its field, render and capture settings) with its preset's optimizer, on the images."""
    plain = get_task("nerf").preset_config(method)
    return replace(plain, data=data, field=config.field, render=config.render, capture=config.capture, eval_views=2,
                   trainer=replace(config.trainer, name="scratch", seed=0))


def to_target(teacher_dir: Path, method: str, options: DistillOptions, out: Path, args, data: Path, target: float) -> dict:
    """Training time to ``target`` test PSNR (the teacher's − 0.5 dB): distilled (evaluated every
    ``--distill-eval-every`` steps, the stages as given) and from scratch (within ``--scratch-cap`` s)."""
    teacher = load_teacher(teacher_dir, args.device)
    config = distill_config(teacher, method, options, output_dir=out, name=f"distill-{method}-target", device=args.device, **QUIET)
    d = time_to_target(config, target, math.inf, args.distill_eval_every)
    row = {"student": method, "target_psnr": target, "distill_to_target_seconds": d["seconds"], "distill_best_psnr": d["best"], "distill_curve": d["curve"]}
    if args.scratch_cap > 0:
        plain = probed_run(scratch_config(data, method, config), "scratch-target", args.scratch_steps)
        sc = time_to_target(plain, target, args.scratch_cap, args.scratch_eval_every)
        row.update({"scratch_to_target_seconds": sc["seconds"], "scratch_trained_seconds": sc["ran_seconds"],
                    "scratch_best_psnr": sc["best"], "scratch_curve": sc["curve"],
                    "scratch_schedule_steps": args.scratch_steps or None})
        if d["seconds"]:  # a lower bound when scratch did not reach the target within the cap
            row["time_ratio"] = (sc["seconds"] if sc["seconds"] is not None else sc["ran_seconds"]) / d["seconds"]
            row["time_ratio_is_lower_bound"] = sc["seconds"] is None
    return row


def render_view(loaded, scale: int = 1) -> tuple:
    """``(c2w, intrinsics, width, height, background)`` of a loaded run's first test view at ``scale`` times the
    capture's resolution (the camera's intrinsics scaled)."""
    cams = loaded.info["cameras"]
    test = loaded.info["split"]["test"][0]
    c2w = torch.tensor(cams["camera_to_world"][test], dtype=torch.float32)
    k = torch.tensor(cams["intrinsics"][test], dtype=torch.float32) * scale
    w, h = int(cams["width"][test]) * scale, int(cams["height"][test]) * scale
    return c2w, k, w, h, torch.tensor(loaded.info["background"], dtype=torch.float32)


def frame_seconds(loaded, view: tuple, kilonerf_termination: bool = False) -> float:
    """Seconds of one frame through the run's own render config (``kilonerf_termination``: with KiloNeRF's
    early ray termination at T < 0.01 instead)."""
    from fieldforge.fields import kilonerf as kn

    model = loaded.model
    own = model.render_config
    if kilonerf_termination:
        model.render_config = kn.kilonerf_render_config(own)
    seconds, _ = kn.time_render(model, *view, repeats=1)
    model.render_config = own
    return seconds


def render_times(run_dirs: dict[str, Path], args) -> dict[str, dict]:
    """Per run (``{name: run dir}``): ``render_s`` (its first test frame) and ``render_s_x{s}`` for every other
    ``--render-scales`` entry; for the ``nerf`` student also ``render_s_kilonerf_ert[_x{s}]`` (KiloNeRF's early
    termination). The runs are timed in turns, so a change in the machine's speed meets every run alike: per
    turn each run renders a warm-up frame, then timed frames back to back, as a viewer renders (a frame right
    after another model's is 1.2–3× slower: caches and freed memory); best of 5 turns × 2 frames at the
    test frame, of 2 × 1 above it."""
    loaded = {name: load_run(path, device=args.device) for name, path in run_dirs.items()}
    out: dict[str, dict] = {name: {} for name in run_dirs}
    for scale in args.render_scales:
        suffix = "" if scale == 1 else f"_x{scale}"
        timings = [(name, "render_s" + suffix, False) for name in run_dirs]
        timings += [("nerf", "render_s_kilonerf_ert" + suffix, True)] if "nerf" in run_dirs else []
        views = {name: render_view(run, scale) for name, run in loaded.items()}
        turns, per_turn = (5, 2) if scale == 1 else (2, 1)  # a large frame's time varies less (and takes seconds)
        best = {(name, key): math.inf for name, key, _ in timings}
        for _ in range(turns):
            for name, key, ert in timings:
                frame_seconds(loaded[name], views[name], ert)  # warm-up
                for _ in range(per_turn):
                    best[name, key] = min(best[name, key], frame_seconds(loaded[name], views[name], ert))
        for (name, key), seconds in best.items():
            out[name][key] = seconds
    return out


def nerf_scene(name: str, data: Path, args, console: Console, on_row) -> list[dict]:
    rows = []
    downscale = args.nerf_downscale if name != "synthetic" else 1
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        t0 = time.perf_counter()
        tconf = nerf_teacher_config(data, args.teacher_steps, args.work or out, args.device, downscale, f"teacher-{name}-{args.teacher_steps}-x{downscale}")
        teacher_dir, tm = teacher_run(tconf, args.work)
        console.print(f"{name}: teacher ngp {tm['psnr']:.2f} dB in {tm['train_seconds']:.0f} s")
        teacher = {"scene": name, "downscale": downscale, "student": "(teacher ngp)", "psnr": tm["psnr"], "ssim": tm["ssim"], "seconds": tm["train_seconds"]}
        rows.append(teacher)
        on_row(teacher)
        run_dirs = {teacher["student"]: teacher_dir}
        options = DistillOptions(feature_steps=args.feature_steps, point_steps=args.point_steps, render_steps=args.render_steps,
                                 tile_steps=args.tile_steps, finetune_steps=args.finetune_steps, batch_size=args.samples)
        for method in args.students:
            if args.to_target:
                row = to_target(teacher_dir, method, options, out, args, data, tm["psnr"] - 0.5)
                row.update({"scene": name, "downscale": downscale})
                console.print(row)
                rows.append(row)
                on_row(row)
                continue
            srun, m, config = distill(teacher_dir, method, options, out, args.device)
            row = {"scene": name, "downscale": downscale, "student": method, "psnr": m["psnr"], "ssim": m["ssim"], "teacher_psnr": m.get("teacher_psnr"),
                   "seconds": m["train_seconds"]}
            run_dirs[method] = srun.path
            for k in ("tile_q99_max", "tile_q99_median"):
                if k in m:
                    row[k] = m[k]
            if args.scratch:
                row.update(scratch(scratch_config(data, method, config), m["train_seconds"], tm["psnr"] - 0.5, args.scratch_cap, args.scratch_eval_every))
            console.print(row)
            rows.append(row)
            on_row(row)
        if not args.to_target:  # every run of the scene timed together, in turns
            times = render_times(run_dirs, args)
            for r in rows:
                r.update(times.get(r["student"], {}))
            on_row(None)
        console.print(f"{name} done in {time.perf_counter() - t0:.0f} s")
    by = {r["student"]: r for r in rows if r["scene"] == name}
    k = by.get("kilonerf", {})
    for scale in args.render_scales if "render_s" in k else []:
        suffix = "" if scale == 1 else f"_x{scale}"
        k["render_speedup_vs_teacher" + suffix] = by["(teacher ngp)"]["render_s" + suffix] / k["render_s" + suffix]
        if "nerf" in by:
            k["render_speedup_vs_nerf" + suffix] = by["nerf"]["render_s" + suffix] / k["render_s" + suffix]
            k["render_speedup_vs_nerf_kilonerf_ert" + suffix] = by["nerf"]["render_s_kilonerf_ert" + suffix] / k["render_s" + suffix]
    return rows


def image_bench(path: Path, args, console: Console, on_row) -> list[dict]:
    rows = []
    task = get_task("image")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        config = task.sized_for(task.preset_config("ngp"), torch.device(args.device))
        config = replace(config, data=path, downscale=args.downscale, trainer=replace(config.trainer, steps=args.image_teacher_steps, output_dir=out,
                                                                                      name="teacher", device=args.device, **QUIET))
        run, tm = train(config)
        rows.append({"scene": path.stem, "student": "(teacher ngp)", "psnr": tm["psnr"], "ssim": tm["ssim"], "seconds": tm["train_seconds"]})
        on_row(rows[-1])
        options = DistillOptions(image_steps=args.image_steps, batch_size=8192)
        for method in args.image_students:
            _, m, dconf = distill(run.path, method, options, out, args.device)
            row = {"scene": path.stem, "student": method, "psnr": m["psnr"], "ssim": m["ssim"], "teacher_psnr": m["teacher_psnr"], "seconds": m["train_seconds"]}
            if args.scratch:
                plain = replace(task.preset_config(method), data=path, downscale=args.downscale, trainer=replace(dconf.trainer, batch_size=8192, name="scratch"))
                row.update(scratch(plain, m["train_seconds"], tm["psnr"] - 0.5, args.scratch_cap, 100))
            console.print(row)
            rows.append(row)
            on_row(row)
    return rows


def sdf_bench(path: Path, args, console: Console, on_row) -> list[dict]:
    rows = []
    task = get_task("sdf")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        config = task.sized_for(task.preset_config("ngp"), torch.device(args.device))
        config = replace(config, data=path, sampling=replace(config.sampling, pool_size=200_000), trainer=replace(
            config.trainer, steps=args.sdf_teacher_steps, output_dir=out, name="teacher", device=args.device, **QUIET))
        run, tm = train(config)
        rows.append({"scene": path.stem, "student": "(teacher ngp)", "chamfer_l1_rel": tm["chamfer_l1_rel"], "seconds": tm["train_seconds"]})
        on_row(rows[-1])
        options = DistillOptions(sdf_steps=args.sdf_steps, batch_size=8192)
        for method in args.sdf_students:
            _, m, _ = distill(run.path, method, options, out, args.device)
            row = {"scene": path.stem, "student": method, "chamfer_l1_rel": m["chamfer_l1_rel"], "teacher_sdf_mae": m.get("teacher_sdf_mae"),
                   "seconds": m["train_seconds"]}
            console.print(row)
            rows.append(row)
            on_row(row)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="synthetic capture only, one Kodak image, short stages")
    p.add_argument("--scenes", nargs="*", default=["synthetic", "lego_half"])
    p.add_argument("--students", nargs="*", default=["nerf", "kilonerf", "ff", "cam", "rbf"])
    p.add_argument("--teacher-steps", type=int, default=3000)
    p.add_argument("--nerf-downscale", type=int, default=1, help="image downscale of the real captures (lego_half); the synthetic capture is 64²")
    p.add_argument("--work", type=Path, default=None, help="keep the teachers here and reuse finished ones (parts of a split benchmark)")
    p.add_argument("--feature-steps", type=int, default=100)
    p.add_argument("--point-steps", type=int, default=300)
    p.add_argument("--render-steps", type=int, default=600)
    p.add_argument("--tile-steps", type=int, default=600)
    p.add_argument("--finetune-steps", type=int, default=200)
    p.add_argument("--samples", type=int, default=8192, help="samples (points) per distillation step")
    p.add_argument("--images", nargs="*", default=["kodim01", "kodim02"])
    p.add_argument("--downscale", type=int, default=2)
    p.add_argument("--image-teacher-steps", type=int, default=1000)
    p.add_argument("--image-steps", type=int, default=1000)
    p.add_argument("--image-students", nargs="*", default=["ff", "siren", "kilonerf"])
    p.add_argument("--shapes", nargs="*", default=["bunny"])
    p.add_argument("--sdf-teacher-steps", type=int, default=400)
    p.add_argument("--sdf-steps", type=int, default=600)
    p.add_argument("--sdf-students", nargs="*", default=["ff", "kilonerf"])
    p.add_argument("--scratch", type=int, default=1, help="1: also train each student from scratch (equal time, time to target)")
    p.add_argument("--scratch-cap", type=float, default=600.0, help="most seconds a from-scratch run may take to reach the target (0: equal time only)")
    p.add_argument("--scratch-eval-every", type=int, default=200)
    p.add_argument("--scratch-steps", type=int, default=0,
                   help="--to-target: the from-scratch run's schedule length in steps (its learning rate decays over them; "
                        "size it to the steps --scratch-cap allows); 0: open-ended, the learning rate stays near its peak")
    p.add_argument("--to-target", action="store_true",
                   help="NeRF scenes: instead of the table above, the training time of each student to the teacher's PSNR − 0.5 dB, "
                        "distilled (evaluated every --distill-eval-every steps) and from scratch (within --scratch-cap s), and their ratio")
    p.add_argument("--distill-eval-every", type=int, default=50)
    p.add_argument("--render-scales", type=int, nargs="+", default=[1],
                   help="render-time frames: the first test view at these multiples of the capture's resolution (1: the test frame)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--tag", default="")
    p.add_argument("--note", default="", help="recorded in the JSON (e.g. how loaded the machine was, whether times are comparable)")
    args = p.parse_args()
    if args.quick:  # what fits in ~30 min on a 2-core CPU shared by 8 jobs (load ≈ 16)
        if args.scenes == ["synthetic", "lego_half"]:  # an explicit --scenes (even empty) is kept
            args.scenes = ["synthetic"]
        args.images, args.teacher_steps, args.students = ["kodim01"], 200, ["kilonerf", "nerf"]
        args.feature_steps, args.point_steps, args.render_steps, args.tile_steps, args.finetune_steps = 0, 40, 80, 100, 30
        args.image_teacher_steps, args.image_steps, args.image_students = 200, 150, ["ff", "kilonerf"]
        args.sdf_teacher_steps, args.sdf_steps, args.samples = 150, 150, 4096
        args.scratch_cap, args.scratch_eval_every = 60.0, 50
    console = Console(stderr=True)
    rows: list[dict] = []
    env = {"machine": cpu_name(), "platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads(),
           "device": args.device, "args": public_args(args),
           "cpus": os.cpu_count(), "load_average_at_start": os.getloadavg(), "note": args.note}
    path = ROOT / "scripts" / "results" / f"bench_distill{'-' + args.tag if args.tag else ''}.json"

    def save(partial: bool) -> None:  # after every part, so an interrupted benchmark keeps what it measured
        path.write_text(json.dumps({"env": env, "complete": not partial, "results": rows}, indent=1))

    def add(row: dict | None) -> None:  # None: rows already added were updated
        if row is not None:
            rows.append(row)
        save(True)

    for scene in args.scenes:
        if scene == "synthetic":
            from fieldforge.app.demos import write_synthetic_capture

            tmp = Path(tempfile.mkdtemp())
            data = write_synthetic_capture(tmp / "synthetic", 40, 64, 64, 1, 0)
        else:
            data = SHARED / scene
            if not data.exists():
                console.print(f"[yellow]skipping {scene}: {data.name} not found")
                continue
        nerf_scene(scene, Path(data), args, console, add)
        save(True)
    for image in args.images:
        image_bench(SHARED / "kodak" / f"{image}.png", args, console, add)
        save(True)
    for shape in args.shapes:
        sdf_bench(SHARED / "meshes" / f"{shape}.ply", args, console, add)
        save(True)
    table = Table(title="Distillation (teacher ngp); scratch = the student trained on the real data")
    cols = ["scene", "student", "psnr", "ssim", "teacher_psnr", "chamfer_l1_rel", "seconds", "equal_time_psnr", "to_target_seconds", "render_s",
            "render_speedup_vs_teacher", "render_speedup_vs_nerf", "tile_q99_max", "target_psnr", "distill_to_target_seconds",
            "scratch_to_target_seconds", "time_ratio"]
    cols += sorted({c for r in rows for c in r if c.startswith(("render_s_", "render_speedup_")) and c not in cols})
    cols = [c for c in cols if any(c in r for r in rows)]  # the columns this run measured
    for c in cols:
        table.add_column(c)

    def show(r: dict, c: str) -> str:
        v = r[c]
        if v is None:  # a target not reached: within the time trained
            return "not reached" if c == "distill_to_target_seconds" else f"> {r.get('scratch_trained_seconds', args.scratch_cap):.0f}"
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    for r in rows:
        table.add_row(*[show(r, c) if c in r else "" for c in cols])
    Console(width=max(120, 14 * len(cols))).print(table)
    save(False)
    console.print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
