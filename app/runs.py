"""Run directory layout: ``config.yaml``, ``checkpoints/``, ``metrics.jsonl``, ``renders/``, ``exports/``."""

import dataclasses
import json
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fieldforge.app.atomic import atomic_write_text, is_stale_temp
from fieldforge.app.config_io import dump_yaml, load_yaml
from fieldforge.data.errors import InputError

_CKPT = re.compile(r"^step-(\d{6,})\.safetensors$")


@dataclass
class RunDir:
    path: Path

    @staticmethod
    def create(output_dir: Path, name: str | None, prefix: str) -> "RunDir":
        """A new run directory ``output_dir/name`` (default: ``<prefix>-<timestamp>``), never reusing one."""
        base = name or f"{prefix}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
        path = Path(output_dir) / base
        i = 1
        while path.is_symlink() or (path.exists() and (not path.is_dir() or any(path.iterdir()))):
            path = Path(output_dir) / f"{base}-{i}"
            i += 1
        path.mkdir(parents=True, exist_ok=True)
        return RunDir(path)

    @staticmethod
    def open(path: str | Path) -> "RunDir":
        """An existing run; ``InputError`` if it has no config."""
        p = Path(path)
        if not (p / "config.yaml").is_file():
            raise InputError(p, "not a FieldForge run directory (no config.yaml)")
        return RunDir(p)

    def own(self, name: str) -> Path:
        """``path / name``, refused if it is a symbolic link or resolves outside the run: writes never follow a
        link out of the run directory (a shared run cannot redirect them)."""
        p = self.path / name
        if p.is_symlink() or (p.exists() and not p.resolve().is_relative_to(self.path.resolve())):
            raise InputError(p, "is a symbolic link; a run directory's files and folders must be inside it")
        return p

    @property
    def checkpoint_dir(self) -> Path:
        return self.own("checkpoints")

    @property
    def renders_dir(self) -> Path:
        return self.own("renders")

    @property
    def exports_dir(self) -> Path:
        return self.own("exports")

    @property
    def metrics_path(self) -> Path:
        return self.own("metrics.jsonl")

    def write_config(self, config: Any) -> None:
        atomic_write_text(self.own("config.yaml"), dump_yaml(config))

    def remove_stale_temp_files(self) -> list[Path]:
        """Delete the temp files a killed process left between a write and its rename; returns them."""
        stale = []
        for folder in (self.path, self.checkpoint_dir, self.renders_dir, self.exports_dir):
            if folder.is_dir():
                stale += [p for p in folder.iterdir() if is_stale_temp(p)]
        for p in stale:
            p.unlink(missing_ok=True)
        return stale

    def read_config(self) -> Any:
        """The run's config (known config dataclasses only), its numbers range-checked like the CLI's options."""
        from fieldforge.app.validation import validate_config

        path = self.own("config.yaml")
        try:
            config = load_yaml(path.read_text())
        except Exception as e:
            raise InputError(path, f"unreadable run config ({type(e).__name__}: {e})") from None
        if not dataclasses.is_dataclass(config):
            raise InputError(path, "not a FieldForge run config (no _type tag at the top level)")
        try:
            validate_config(config, paths=False)
        except InputError as e:
            raise InputError(path, f"invalid value: {e.problem}") from None
        return config

    def checkpoints(self) -> list[tuple[int, Path]]:
        """Complete checkpoints (weights and state both present), sorted by step."""
        if not self.checkpoint_dir.is_dir():
            return []
        found = []
        for p in self.checkpoint_dir.iterdir():
            m = _CKPT.match(p.name)
            if m and p.with_suffix(".state.pt").is_file():
                found.append((int(m.group(1)), p))
        return sorted(found)

    def latest_checkpoint(self) -> tuple[int, Path] | None:
        ckpts = self.checkpoints()
        return ckpts[-1] if ckpts else None

    def append_metrics(self, record: dict) -> None:
        fd = os.open(self.metrics_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()

    def read_metrics(self) -> list[dict]:
        if not self.metrics_path.is_file():
            return []
        out = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by a killed process
        return out

    def truncate_metrics(self, after_step: int) -> None:
        """Drop records past ``after_step`` (a resumed run re-logs them)."""
        kept = [r for r in self.read_metrics() if r.get("step", 0) <= after_step]
        atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept))
