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

__all__ = ["RunProgress", "TrainProgress", "BatchProgress"]


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


class BatchProgress:
    """One line per provider batch (submitted, in progress, done, failed) and the cost so
    far, redrawn in place on a TTY; elsewhere one log line each time a batch changes."""

    def __init__(self, *, enabled: bool | None = None, description: str = "batch"):
        self._console = Console(stderr=True)
        self.enabled = self._console.is_terminal if enabled is None else enabled
        # not a terminal and not turned off (a cron job, a CI log): a plain line per change,
        # since a batch may take hours and silence reads as a hang
        self._lines_only = enabled is None and not self.enabled
        self._description = description
        self._live = None
        self._lines: dict[str, tuple] = {}
        self._said: dict[str, tuple] = {}
        self.cost: float | None = 0.0

    def _table(self):
        from rich.table import Table

        t = Table(title=self._description, title_justify="left", box=None, pad_edge=False)
        for col in ("batch", "status", "items", "done", "failed", "cost"):
            t.add_column(col, justify="left" if col in ("batch", "status") else "right")
        for bid, (status, total, done, failed, cost) in self._lines.items():
            t.add_row(bid, status, "?" if total is None else f"{total:,}", f"{done:,}",
                      f"{failed:,}", "n/a" if cost is None else f"${cost:,.4f}")
        total = "n/a" if self.cost is None else f"${self.cost:,.4f}"
        t.caption = f"cost so far {total}"
        return t

    def update(self, batch_id: str, status: str, *, total: int | None, done: int,
               failed: int, cost: float | None = None) -> None:
        line = (status, total, done, failed, cost)
        self._lines[batch_id] = line
        if self.enabled:
            if self._live is None:
                from rich.live import Live

                self._live = Live(self._table(), console=self._console, refresh_per_second=4)
                self._live.start()
            else:
                self._live.update(self._table())
        elif self._lines_only and self._said.get(batch_id) != line[:4]:
            self._said[batch_id] = line[:4]
            money = "" if self.cost is None else f"; cost so far ${self.cost:,.4f}"
            self._console.print(
                f"synth: batch {batch_id}: {status} ({'?' if total is None else total} "
                f"items, {done} done, {failed} failed{money})", highlight=False,
                soft_wrap=True)

    def stop(self) -> None:
        if self._live is not None:
            self._live.update(self._table())
            self._live.stop()
            self._live = None
