"""Where a freshly generated admin key goes: a file only its owner can read, or the terminal of the
person who started the server; never stdout, stderr or a log, which in a container become pod logs
that anyone with log access (or a log pipeline) keeps.

Choose the key yourself with ``STRATA_ADMIN_KEY`` (a Kubernetes Secret, see ``deploy/workloads.py``),
or let ``strata serve --admin-key-file PATH`` write the generated one there (mode 0600). Without
either, a server started from a terminal writes the key to that terminal (``/dev/tty``, which
redirecting stdout does not capture); a server with no terminal generates no key at all and says
how to get one, instead of making a key nobody can read.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

TERMINAL = Path("/dev/tty")
KEY_FILE_MODE = 0o600

Handover = Callable[[str], str]
"""Hands the new key over; returns where it went, for the log (the place, never the key)."""


def write_key_file(path: Path, key: str) -> None:
    """Write ``key`` to ``path`` readable by its owner only, also when the file already existed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, KEY_FILE_MODE)
    try:
        os.fchmod(descriptor, KEY_FILE_MODE)  # an existing file keeps its old mode through O_CREAT
        os.write(descriptor, f"{key}\n".encode())
    finally:
        os.close(descriptor)


def admin_key_handover(key_file: Path | None, terminal: Path = TERMINAL) -> Handover | None:
    """How a generated key would be handed over, decided before one is made; None: nowhere safe."""
    if key_file is not None:

        def to_file(key: str) -> str:
            write_key_file(key_file, key)
            return f"written to {key_file} (mode 0600)"

        return to_file
    try:
        terminal.open("w", encoding="utf-8").close()
    except OSError:  # no controlling terminal: a service, a container, a test harness
        return None

    def to_terminal(key: str) -> str:
        with terminal.open("w", encoding="utf-8") as console:
            console.write(f"Strata admin key (shown once, store it now): {key}\n")
        return "shown on the terminal"

    return to_terminal


NO_HANDOVER = (
    "no admin key exists and none was generated: this server has no terminal to show one on. Set "
    "STRATA_ADMIN_KEY, or start it with --admin-key-file PATH (STRATA_ADMIN_KEY_FILE), or create one with "
    "`strata keys create --tenant admin --scopes admin`"
)
