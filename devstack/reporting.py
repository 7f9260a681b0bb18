"""How the stack's commands (``srs dev``, ``srs llm``, ``srs kind``, ``srs image``) end on an
error: one line ``<prog>: <what failed>`` on stderr and an exit code by kind of failure,
never a traceback for a failure the user can act on."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Mapping


def run_reporting(prog: str, work: Callable[[], int], exit_codes: Mapping[type[Exception], int]) -> int:
    """Run ``work``; an exception of a type in ``exit_codes`` (checked in order) is said in
    one line and exits with its code. A failed tool names its command line and exit status."""
    try:
        return work()
    except tuple(exit_codes) as e:
        if isinstance(e, subprocess.CalledProcessError):
            what = f"{' '.join(map(str, e.cmd))} failed (exit {e.returncode})"
        else:
            what = str(e)
        print(f"{prog}: {what}", file=sys.stderr)
        return next(code for kind, code in exit_codes.items() if isinstance(e, kind))
