"""``fieldforge capture process``: photos or a video → a posed capture (see ``app/capture_process.py``)."""

import warnings

import tyro
from fieldforge.app.cli_train import TYRO_CONF


def capture_process(argv: list[str], prog: str) -> int:
    from fieldforge.app.callbacks import console
    from fieldforge.app.capture_process import ProcessOptions, process_capture
    from fieldforge.data.captures.capture import CaptureWarning

    options = tyro.cli(ProcessOptions, args=argv, prog=prog, config=TYRO_CONF)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CaptureWarning)
        result = process_capture(options)
    for w in caught:
        console.print(f"[yellow]warning:[/yellow] {w.message}", highlight=False, soft_wrap=True)
    if result.unregistered and not caught:
        console.print(f"not registered ({len(result.unregistered)}): {', '.join(result.unregistered)}", highlight=False, soft_wrap=True)
    print(result.summary_line())
    print(f"next: fieldforge train nerf --data {options.output}")
    return 0
