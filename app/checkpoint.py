"""Checkpoints: weights as safetensors, optimizer/scheduler/RNG/task state as a torch file (loaded with
``weights_only``: no pickled code); both written atomically."""

import io
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save

from fieldforge.app.atomic import atomic_write_bytes
from fieldforge.app.runs import RunDir
from fieldforge.data.errors import InputError


class NonFiniteCheckpoint(InputError):
    """A checkpoint would hold NaN or infinite values: it is not written (the CLI stops with one line, exit 2;
    the trainer's guard keeps weights finite, so this is the last line of defence, e.g. an optimizer moment
    that overflowed)."""


def non_finite(tree: Any, prefix: str = "") -> list[str]:
    """Names of the floating-point tensors in a nested dict/list/tuple that hold NaN or ±inf."""
    if isinstance(tree, torch.Tensor):
        return [prefix or "tensor"] if tree.is_floating_point() and not bool(torch.isfinite(tree).all()) else []
    if isinstance(tree, dict):
        return [n for k, v in tree.items() for n in non_finite(v, f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(tree, (list, tuple)):
        return [n for i, v in enumerate(tree) for n in non_finite(v, f"{prefix}[{i}]")]
    return []


def save_checkpoint(run: RunDir, step: int, model: torch.nn.Module, state: dict[str, Any], keep: int = 3) -> Path:
    """Write ``step-NNNNNN.safetensors`` + ``step-NNNNNN.state.pt``; keep the newest ``keep`` checkpoints.
    ``NonFiniteCheckpoint`` (nothing written) if any weight or optimizer tensor is NaN or infinite."""
    weights = {k: v.detach().contiguous().cpu().clone() for k, v in model.state_dict().items()}
    bad = non_finite(weights) + non_finite(state)
    if bad:
        raise NonFiniteCheckpoint(run.path, f"step {step}: non-finite values in {', '.join(bad[:3])}; checkpoint not written (lower --optim.lr)")
    path = run.checkpoint_dir / f"step-{step:06d}.safetensors"
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path.with_suffix(".state.pt"), buf.getvalue())
    atomic_write_bytes(path, save(weights, metadata={"step": str(step)}))
    if keep > 0:
        for _, old in run.checkpoints()[:-keep]:
            old.unlink(missing_ok=True)
            old.with_suffix(".state.pt").unlink(missing_ok=True)
    return path


def load_weights(path: Path, model: torch.nn.Module, total_steps: int | None = None) -> None:
    """Load a checkpoint's weights into ``model`` (strict). ``total_steps``: the run's length, to convert the
    step counters of progressive components in checkpoints written before they took progress."""
    try:
        weights = load_file(str(path))
        with safe_open(str(path), "pt") as f:
            step = int((f.metadata() or {}).get("step", 0))
    except Exception as e:
        raise InputError(path, f"corrupt checkpoint ({type(e).__name__}: {e})") from None
    bad = non_finite(weights)
    if bad:
        raise InputError(path, f"checkpoint holds NaN or infinite weights ({', '.join(bad[:3])}); use an earlier step (--step)")
    if total_steps:
        weights = with_progress(weights, model.state_dict(), step, total_steps)
    expected = model.state_dict()
    shapes = [f"{k} {tuple(v.shape)} vs {tuple(expected[k].shape)}" for k, v in weights.items() if k in expected and v.shape != expected[k].shape]
    if shapes:
        raise InputError(path, f"checkpoint does not match config.yaml (shapes: {'; '.join(shapes[:2])}); was the config edited?")
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise InputError(path, f"checkpoint does not match the config (missing {missing[:3]}, unexpected {unexpected[:3]})")


def load_state(path: Path) -> dict[str, Any]:
    """The trainer state beside a checkpoint. ``weights_only``: tensors and plain containers only, so a run
    directory from someone else cannot run code when resumed."""
    import pickle

    try:
        return torch.load(path.with_suffix(".state.pt"), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise InputError(path.with_suffix(".state.pt"), "corrupt checkpoint state: it holds pickled objects or code, which are "
                         "never loaded (only tensors and plain containers are)") from None
    except Exception as e:
        raise InputError(path.with_suffix(".state.pt"), f"corrupt checkpoint state ({type(e).__name__}: {e})") from None


def with_progress(weights: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], step: int, total_steps: int) -> dict[str, torch.Tensor]:
    """Checkpoints of FieldForge 0.1 stored c2f/PINs schedules as ``*.progress_step`` (a step count) and SAPE's
    not at all; today they hold ``*.progress`` (fraction of the stage). Convert with the run's length."""
    out = dict(weights)
    for key, value in expected.items():
        if key in out or not (key == "progress" or key.endswith(".progress")):
            continue
        old = key + "_step"
        done = float(out.pop(old)) if old in out else float(step)
        out[key] = torch.tensor(min(1.0, done / max(1, total_steps)), dtype=value.dtype)
    return out
