"""Token prices and the cost of a request.

The table ships as data (``synth/data/prices.yaml``) and can be extended or overridden with
``--price-file``. An unknown model costs ``None`` (with a warning from the runner), never 0:
a silent zero would make ``--max-cost`` meaningless.

An entry may carry ``batch``: the fraction of its standard price that the provider's batch
API charges (OpenAI Batch API and Anthropic Message Batches: 0.5, answers within 24 h).
``synth estimate`` reports a batch cost where one is known; the runner itself always sends
standard requests and is billed at the standard price.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from synth.errors import InputError
from synth.yamlfile import field_lines, load_yaml

__all__ = ["Price", "PriceTable", "load_prices"]


@dataclass(frozen=True, slots=True)
class Price:
    """USD per 1M tokens; ``batch``: the batch API's price as a fraction of this one
    (None: the provider has no batch API, or none is known); ``training``: USD per 1M
    tokens a provider's fine-tuning job trains on (None: unknown or not tunable)."""

    input: float
    output: float
    cached_input: float | None = None
    batch: float | None = None
    training: float | None = None

    def cost(self, input_tokens: int | None, output_tokens: int | None,
             cached_input_tokens: int | None = None) -> float | None:
        if input_tokens is None or output_tokens is None:
            return None
        cached = min(cached_input_tokens or 0, input_tokens)
        cached_rate = self.input if self.cached_input is None else self.cached_input
        # Anthropic bills cache *writes* at 1.25x input; they are counted at 1x here
        # (the API reports them, but few jobs write caches on purpose).
        return ((input_tokens - cached) * self.input + cached * cached_rate
                + output_tokens * self.output) / 1e6

    def batch_cost(self, input_tokens: int | None, output_tokens: int | None,
                   cached_input_tokens: int | None = None) -> float | None:
        """The same tokens through the provider's batch API; None when it has none."""
        cost = self.cost(input_tokens, output_tokens, cached_input_tokens)
        if cost is None or self.batch is None:
            return None
        return cost * self.batch


@dataclass(frozen=True, slots=True)
class _Entry:
    provider: str
    match: str
    host: str | None
    price: Price


class PriceTable:
    def __init__(self, entries: list[_Entry]):
        self._entries = entries

    def lookup(self, provider: str, model: str, host: str | None = None) -> Price | None:
        """Longest ``match`` prefix for this provider (and host, when the entry names one).

        Later files win over earlier ones at equal length, so ``--price-file`` overrides.
        """
        found = self.entry(provider, model, host)
        return None if found is None else found[1]

    def entry(self, provider: str, model: str, host: str | None = None
              ) -> tuple[str, Price] | None:
        """``(match, price)`` of the entry :meth:`lookup` uses, or None."""
        best, best_len = None, -1
        for e in self._entries:
            if e.provider != provider or not model.startswith(e.match):
                continue
            if e.host is not None and e.host != host:
                continue
            if len(e.match) >= best_len:
                best, best_len = (e.match, e.price), len(e.match)
        return best

    def extended(self, other: "PriceTable") -> "PriceTable":
        return PriceTable(self._entries + other._entries)


def _parse(path: Path | str) -> PriceTable:
    data, node = load_yaml(path)
    where = str(path)
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise InputError("expected a mapping with a 'models' list", path=where, field="models")
    lines = field_lines(node, "models")
    entries = []
    for i, item in enumerate(data["models"]):
        at = lines[i] if i < len(lines) else {}
        line = at.get("")
        if not isinstance(item, dict):
            raise InputError("each model entry must be a mapping", path=where, line=line)
        for key in ("provider", "match", "input", "output"):
            if key not in item:
                raise InputError("missing", path=where, line=line, field=key)
        nums = {}
        for key in ("input", "output", "cached_input", "training"):
            v = item.get(key)
            if v is None and key in ("cached_input", "training"):
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise InputError(f"must be a number >= 0 (USD per 1M tokens), got {v!r}",
                                 path=where, line=at.get(key, line), field=key)
            nums[key] = float(v)
        if item.get("batch") is not None:
            v = item["batch"]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1:
                raise InputError("must be a number in (0, 1]: the batch price as a fraction "
                                 f"of the standard one, got {v!r}", path=where,
                                 line=at.get("batch", line), field="batch")
            nums["batch"] = float(v)
        entries.append(_Entry(str(item["provider"]), str(item["match"]),
                              item.get("host"), Price(**nums)))
    return PriceTable(entries)


def load_prices(extra: str | Path | None = None) -> PriceTable:
    """The shipped table, extended by ``extra`` (whose entries win ties)."""
    with resources.as_file(resources.files("synth") / "data" / "prices.yaml") as p:
        table = _parse(p)
    if extra is not None:
        table = table.extended(_parse(extra))
    return table
