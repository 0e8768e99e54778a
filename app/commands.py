"""Command implementations: parse options with tyro, run, print a one-line summary on stdout."""

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated

import tyro

from fieldforge.app.config import IMAGE_METHODS, ImageTrainConfig, image_train_config
from fieldforge.data.errors import InputError

TYRO_CONF = (tyro.conf.AvoidSubcommands, tyro.conf.FlagConversionOff)


def _method_from_argv(argv: list[str], presets: dict, default: str) -> str:
    """Pre-read ``--method`` so the preset's values become the defaults that --help shows."""
    method = default
    for i, arg in enumerate(argv):
        if arg == "--method" and i + 1 < len(argv):
            method = argv[i + 1]
        elif arg.startswith("--method="):
            method = arg.split("=", 1)[1]
    if method not in presets:
        raise InputError(None, f"unknown --method {method!r}; choose one of: {', '.join(presets)}")
    return method


ENCODING_NAMES = {
    "identity": "IdentityEncodingConfig",
    "frequency": "FrequencyEncodingConfig",
    "fourier": "FourierEncodingConfig",
    "hashgrid": "HashGridEncodingConfig",
    "c2f-frequency": "CoarseToFineFrequencyConfig",
    "c2f-fourier": "CoarseToFineFourierConfig",
    "sape": "SAPEConfig",
}
"""``--encoding NAME`` → config class in ``fields.encodings`` (its defaults replace the preset's encoding)."""
NETWORK_NAMES = {"mlp": "MLPConfig", "cam": "CAMConfig", "rbf": "RBFConfig", "pins": "PINsConfig", "siren": "SirenConfig"}
"""``--network NAME`` → config class in ``fields.networks``."""


def _pop_option(argv: list[str], name: str) -> tuple[list[str], str | None]:
    """Remove ``--name VALUE`` / ``--name=VALUE`` from ``argv``; the last value wins."""
    out, value, i = [], None, 0
    while i < len(argv):
        arg = argv[i]
        if arg == name and i + 1 < len(argv):
            value, i = argv[i + 1], i + 2
            continue
        if arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
        else:
            out.append(arg)
        i += 1
    return out, value


def _components_from_argv(argv: list[str], default):
    """Pre-read ``--encoding NAME`` / ``--network NAME``: swap that component of the preset's field for the
    named type with its own defaults, so ``--field.encoding.*`` / ``--field.network.*`` (and --help) then
    address the new type. Returns the remaining argv and the updated default config."""
    import fieldforge.fields.encodings as encodings
    import fieldforge.fields.networks as networks

    argv, encoding = _pop_option(argv, "--encoding")
    argv, network = _pop_option(argv, "--network")
    field = default.field
    for value, names, module, attr, flag in ((encoding, ENCODING_NAMES, encodings, "encoding", "--encoding"),
                                             (network, NETWORK_NAMES, networks, "network", "--network")):
        if value is None:
            continue
        if value not in names:
            raise InputError(None, f"unknown {flag} {value!r}; choose one of: {', '.join(names)}")
        cls = getattr(module, names[value])
        current = getattr(field, attr)
        if not isinstance(current, cls):
            field = replace(field, **{attr: _carry_mlp(current, cls)})
    return argv, replace(default, field=field)


def _carry_mlp(current, cls):
    """A default ``cls`` that keeps the preset's MLP where both sides have one (e.g. ngp's 2×64 MLP → CAM)."""
    import dataclasses

    from fieldforge.fields.networks import MLPConfig

    inner = current if isinstance(current, MLPConfig) else getattr(current, "mlp", None)
    if cls is MLPConfig and isinstance(inner, MLPConfig):
        return inner
    if isinstance(inner, MLPConfig) and any(f.name == "mlp" for f in dataclasses.fields(cls)):
        return cls(mlp=inner)
    return cls()


def _help_description(config_type) -> str:
    """The config's docstring plus the component switches that tyro does not see (they are pre-read)."""
    doc = (config_type.__doc__ or "").strip()
    return (f"{doc}\n\n--method picks a preset. --encoding {{{','.join(ENCODING_NAMES)}}} and --network "
            f"{{{','.join(NETWORK_NAMES)}}} swap that component of the preset for the named type (its defaults; "
            "then set its options with --field.encoding.* / --field.network.*; --help after them lists those).")


def _summary(prefix: str, metrics: dict, path: Path) -> str:
    parts = [prefix]
    for key, fmt in (("psnr", "PSNR {:.2f} dB"), ("ssim", "SSIM {:.4f}")):
        if key in metrics:
            parts.append(fmt.format(metrics[key]))
    if "train_seconds" in metrics:
        parts.append(f"{metrics['steps']} steps in {metrics['train_seconds']:.1f} s")
    return ", ".join(parts) + f" → {path}"


def run_train_command(argv: list[str], prog: str, config_type: type, default, train_fn, resume_fn, data_hint: str):
    """Shared body of every ``train`` command: component switches, tyro parsing (the preset as defaults),
    then a fresh run or ``--resume`` (``--steps`` given with it extends the run). Returns ``(run, metrics)``."""
    argv, default = _components_from_argv(argv, default)
    config = tyro.cli(config_type, default=default, args=argv, prog=prog, config=TYRO_CONF, description=_help_description(config_type))
    if config.resume is not None:
        steps = config.trainer.steps if any(a.startswith("--steps") for a in argv) else None
        return resume_fn(config.resume, steps)
    if str(config.data) in ("", "."):
        raise InputError(None, f"--data is required ({data_hint})")
    return train_fn(config)


def train_image(argv: list[str], prog: str) -> int:
    from fieldforge.app.train import resume_image, train_image as run_training

    default = image_train_config(_method_from_argv(argv, IMAGE_METHODS, "ff"))
    run, metrics = run_train_command(argv, prog, ImageTrainConfig, default, run_training, resume_image, "an image file")
    print(_summary(f"trained {run.read_config().method}", metrics, run.path))
    return 0


def export_image(argv: list[str], prog: str) -> int:
    from fieldforge.app.export import ExportImageConfig, export_image as run_export

    config = tyro.cli(ExportImageConfig, args=argv, prog=prog, config=TYRO_CONF)
    if str(config.run) in ("", "."):
        raise InputError(None, "--run is required (a run directory)")
    out, metrics = run_export(config)
    print(_summary(f"exported {metrics['width']}×{metrics['height']} from step {metrics['step']}", metrics, out))
    return 0


@dataclass(frozen=True)
class DemoConfig:
    """Fit Fourier features to scikit-image's bundled 'astronaut' photo (no download needed)."""

    method: str = "ff"
    """Image method preset."""
    steps: int = 400
    """Training steps."""
    size: int = 256
    """Side of the square demo image (the 512² photo is box-downscaled)."""
    batch_size: int = 8192
    """Pixels per step."""
    output_dir: Path = Path("outputs")
    """Where the demo run directory is created."""
    progress: bool = True


def demo(argv: list[str], prog: str) -> int:
    import numpy as np
    import skimage.data
    import skimage.transform

    from fieldforge.app.atomic import atomic_write_bytes
    from fieldforge.app.train import train_image as run_training
    from fieldforge.data.images import encode_image, srgb_to_linear

    import torch

    config = tyro.cli(DemoConfig, args=argv, prog=prog, config=TYRO_CONF)
    if config.method not in IMAGE_METHODS:
        raise InputError(None, f"unknown --method {config.method!r}; choose one of: {', '.join(IMAGE_METHODS)}")
    photo = skimage.data.astronaut()
    small = skimage.transform.resize(photo, (config.size, config.size), anti_aliasing=True, preserve_range=True) / 255.0
    linear = srgb_to_linear(torch.from_numpy(np.asarray(small, dtype=np.float32)))
    input_path = config.output_dir / "demo-input" / "astronaut.png"
    atomic_write_bytes(input_path, encode_image(linear, "png"))
    base = image_train_config(config.method)
    train_config = replace(
        base,
        data=input_path,
        trainer=replace(
            base.trainer, steps=config.steps, batch_size=config.batch_size, eval_every=0, checkpoint_every=config.steps // 2,
            output_dir=config.output_dir, name=f"demo-{config.method}", progress=config.progress,
        ),
    )
    run, metrics = run_training(train_config)
    print(_summary(f"demo {config.method}", metrics, run.path / "renders" / "reconstruction.png"))
    return 0


@dataclass(frozen=True)
class InfoConfig:
    run: Annotated[Path, tyro.conf.Positional]
    """Run directory."""


def info(argv: list[str], prog: str) -> int:
    from fieldforge.app.config_io import dump_yaml
    from fieldforge.app.runs import RunDir

    config = tyro.cli(InfoConfig, args=argv, prog=prog, config=TYRO_CONF)
    run = RunDir.open(config.run)
    print(f"run: {run.path}")
    print("config:")
    print("  " + dump_yaml(run.read_config()).replace("\n", "\n  ").rstrip())
    records = run.read_metrics()
    evals = [r for r in records if r.get("kind") == "eval"]
    trains = [r for r in records if r.get("kind") == "train"]
    if trains:
        print(f"training: {trains[-1]['step']} steps logged, last loss {trains[-1]['loss']:.4g}")
    if evals:
        print("last evaluation: " + json.dumps(evals[-1]))
    ckpts = run.checkpoints()
    print("checkpoints: " + (", ".join(f"step {s} ({p.name})" for s, p in ckpts) if ckpts else "none"))
    return 0
