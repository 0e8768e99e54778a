"""``fieldforge view RUN``: serve the interactive viewer (viser) for a finished or running run."""

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import tyro
from fieldforge.app.cli_train import TYRO_CONF


@dataclass(frozen=True)
class ViewConfig:
    """Explore a run in the browser: radiance fields volume-rendered, SDFs sphere-traced, images as a zoomable plane."""

    run: Annotated[Path, tyro.conf.Positional]
    """Run directory."""
    host: str = "127.0.0.1"
    """Address to listen on (127.0.0.1: this machine only; use ssh -L to reach it from elsewhere)."""
    port: int = 8080
    """Port to listen on."""
    step: int | None = None
    """Checkpoint step (default: newest; the panel can switch)."""
    max_resolution: int | None = None
    """Initial max-resolution control (default: 1024 on CUDA, 384 on CPU)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where the field is evaluated ('auto': CUDA when present)."""


def view(argv: list[str], prog: str) -> int:
    from fieldforge.app.viewer.extra import require_viewer

    c = tyro.cli(ViewConfig, args=argv, prog=prog, config=TYRO_CONF)
    require_viewer("fieldforge view")
    from fieldforge.app.loader import load_run
    from fieldforge.app.trainer import resolve_device
    from fieldforge.app.validation import validate_config
    from fieldforge.app.viewer.server import Viewer, serve_forever

    validate_config(c)
    loaded = load_run(c.run, c.step, resolve_device(c.device))
    serve_forever(Viewer(loaded, c.host, c.port, max_resolution=c.max_resolution))
    return 0
