"""Rich progress display for model loading: one line per replica, until all are ready."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn


class LoadProgress:
    """A ProgressCallback: called with (replica_id, phase) as replicas load and warm up."""

    def __init__(self, console: Console, total_replicas: int, ready_message: str) -> None:
        self._console = console
        self._remaining = total_replicas
        self._ready_message = ready_message
        self._started = time.perf_counter()
        self._tasks: dict[str, TaskID] = {}
        self._failures: dict[str, str] = {}
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )

    def __call__(self, replica_id: str, phase: str) -> None:
        if phase == "loading":
            if not self._tasks:
                self._progress.start()
            self._tasks[replica_id] = self._progress.add_task(f"{replica_id}: loading and warming up", total=1)
            return
        task = self._tasks[replica_id]
        if phase == "ready":
            self._progress.update(task, completed=1, description=f"{replica_id}: [green]ready")
        else:
            self._failures[replica_id] = phase.removeprefix("failed: ")
            self._progress.update(task, completed=1, description=f"{replica_id}: [red]failed")
        self._remaining -= 1
        if self._remaining == 0:
            self._finish()

    def _finish(self) -> None:
        self._progress.stop()
        elapsed = time.perf_counter() - self._started
        if not self._failures:
            self._console.print(f"[bold green]{self._ready_message}[/] (models loaded in {elapsed:.1f} s)")
            return
        # The progress line truncates to the terminal width; the full reason matters more than layout.
        for replica_id, reason in self._failures.items():
            self._console.print(f"[bold red]{replica_id} did not load:[/] {reason}", highlight=False, soft_wrap=True)
        self._console.print(
            f"[bold red]{len(self._failures)} replica(s) failed to load[/]: /readyz answers 503 until they do "
            f"(after {elapsed:.1f} s)"
        )
