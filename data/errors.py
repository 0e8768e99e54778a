"""The one error type for bad user input. The CLI prints its message on one line and exits with code 2."""

from pathlib import Path


class InputError(ValueError):
    """Bad user input: the message names the file and what is wrong."""

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else Path(path)
        problem = " ".join(problem.split()) if "\n" in problem else problem  # one line, whatever a library said
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path is not None else problem)


def require_file(path: str | Path, what: str = "file") -> Path:
    """Return ``path`` as a Path if it is a non-empty regular file, else raise ``InputError``."""
    p = Path(path)
    if not p.exists():
        raise InputError(p, f"{what} does not exist")
    if p.is_dir():
        raise InputError(p, f"expected a {what}, found a directory")
    if p.stat().st_size == 0:
        raise InputError(p, f"{what} is empty (0 bytes)")
    return p
