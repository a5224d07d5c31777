"""A live progress bar with rate, ETA, tokens and running cost; silent when not on a TTY."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

__all__ = ["RunProgress", "TrainProgress"]


class _RateColumn(ProgressColumn):
    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.1f} req/s" if speed else "-- req/s", style="cyan")


class _MeterColumn(ProgressColumn):
    def render(self, task) -> Text:
        f = task.fields
        cost = f.get("cost")
        money = "cost n/a" if cost is None else f"${cost:,.4f}"
        errors = f.get("errors", 0)
        tail = f"  [{errors} errors]" if errors else ""
        return Text(f"{f.get('tokens', 0):,} tok  {money}{tail}", style="green")


class RunProgress:
    """Thin wrapper so the runner never touches rich directly."""

    def __init__(self, *, enabled: bool | None = None, description: str = "generate"):
        console = Console(stderr=True)
        self.enabled = console.is_terminal if enabled is None else enabled
        self._progress = None
        self._task = None
        self._description = description
        self._console = console
        self.tokens = 0
        self.cost: float | None = 0.0
        self.errors = 0

    def start(self, total: int, done: int, *, tokens: int = 0, cost: float | None = 0.0) -> None:
        self.tokens, self.cost = tokens, cost
        if not self.enabled:
            return
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            _RateColumn(), TimeRemainingColumn(), _MeterColumn(),
            console=self._console, refresh_per_second=8, transient=False)
        self._progress.start()
        self._task = self._progress.add_task(self._description, total=total, completed=done,
                                             tokens=tokens, cost=cost, errors=0)

    def advance(self, *, tokens: int = 0, cost: float | None = 0.0, error: bool = False) -> None:
        self.tokens += tokens
        if self.cost is not None:
            self.cost = None if cost is None else self.cost + cost
        self.errors += error
        if self._progress is not None:
            self._progress.update(self._task, advance=1, tokens=self.tokens, cost=self.cost,
                                  errors=self.errors)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class _TrainColumn(ProgressColumn):
    def render(self, task) -> Text:
        f = task.fields
        loss, kl, tps = f.get("loss"), f.get("kl"), f.get("tokens_per_s")
        parts = [f"loss {loss:.4f}" if loss is not None else "loss --"]
        if kl is not None:
            parts.append(f"kl {kl:.4f}")
        parts.append(f"{tps:,.0f} tok/s" if tps else "-- tok/s")
        return Text("  ".join(parts), style="green")


class TrainProgress:
    """Steps done, tokens/s, loss (and KL), time left; silent when not on a TTY."""

    def __init__(self, *, enabled: bool | None = None, description: str = "train"):
        self._console = Console(stderr=True)
        self.enabled = self._console.is_terminal if enabled is None else enabled
        self._description = description
        self._progress = None
        self._task = None

    def start(self, total: int, done: int) -> None:
        if not self.enabled:
            return
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            _TrainColumn(), TimeRemainingColumn(), console=self._console,
            refresh_per_second=4, transient=False)
        self._progress.start()
        self._task = self._progress.add_task(self._description, total=total, completed=done)

    def advance(self, *, loss: float, kl: float | None = None,
                tokens_per_s: float | None = None) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=1, loss=loss, kl=kl,
                                  tokens_per_s=tokens_per_s)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
