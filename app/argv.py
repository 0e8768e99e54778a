"""Reading options out of an argv list before a parser sees it (``--method``, ``--target``, ``--viewer``, …)."""

from collections.abc import Sequence


def pop_option(argv: list[str], name: str) -> tuple[list[str], str | None]:
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


def peek_option(argv: Sequence[str], name: str) -> str | None:
    """The value of ``--name`` in ``argv`` (last wins), without removing it."""
    return pop_option(list(argv), name)[1]


def option_names(argv: Sequence[str]) -> list[str]:
    return [a.split("=", 1)[0] for a in argv if a.startswith("--")]
