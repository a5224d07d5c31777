"""In-process transformers teacher with dynamic batching.

``LocalTeacher("smollm2-135m-instruct")`` answers chat requests with a model that runs in this
process — no server, no network. Concurrent :meth:`LocalTeacher.complete` calls are grouped
into one ``model.generate`` call per batch:

* a background *batcher* task takes the oldest waiting request, waits up to
  ``batch_wait_s`` (counted from that request's arrival) for more, and takes up to
  ``max_batch_size`` waiting requests whose generation parameters are identical
  (temperature, top_p, max_tokens, seed, top_logprobs); requests with other parameters
  wait for their own batch;
* the batch is chat-templated, left-padded and generated in ONE dedicated worker thread, so
  the event loop stays responsive and model calls never overlap;
* each caller's future gets its own :class:`~synth.records.Completion`, or a
  :class:`~synth.errors.FatalRequestError` when its request failed.

Model specs (an embedded name, a ``.gguf`` file or a Hugging Face model directory) are
resolved, verified, converted and cached by :mod:`synth.models`; this module only batches.

Reproducibility: greedy decoding (``temperature=0``) gives the same text batched or alone,
up to float rounding from padding (exact in practice in fp32). With ``temperature > 0`` and a
``seed``, torch is seeded once before each batch: the whole batch is reproducible for the
same batch composition, but one request's sample depends on which requests shared its batch.

Failures: a request with invalid params, or whose prompt plus ``max_tokens`` does not fit the
model's context, fails alone (:class:`~synth.errors.FatalRequestError`) before generation.
If ``generate`` itself raises (out of memory, a bad input), the batch is retried in halves
until the failing request is isolated; only it gets the error, and the batcher keeps serving.

Logprobs (``params.top_logprobs = K``) come from the raw logits (``output_logits=True``),
``log_softmax`` in fp32: the chosen token and the K best, per generated token up to and
including EOS. generate keeps one ``(batch, vocab)`` tensor per step until the batch ends:
32 x 64 steps x 49,152 x 4 B = 400 MB for SmolLM2, so lower ``max_batch_size`` for long
logprob runs on big vocabularies.

Only the request's parameters shape sampling: :func:`synth.models.load_model` replaces
the model's own ``generation_config`` defaults (repetition penalties, top_k...) by a config
that keeps only the special token ids, and ``top_k`` is disabled explicitly.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import logging
import time
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from synth.errors import ConfigError, FatalRequestError, ModelLoadError, TeacherError
from synth.models import DTYPES, eos_token_ids, error_line, load_model
from synth.records import Completion, Params, Request
from synth.teachers.base import ProviderTraits
from synth.teachers.local_tokens import prompt_token_counter

__all__ = ["LocalTeacher", "TRAITS"]

#: In-process weights: no endpoint, no terms of service beyond the model's licence (so an
#: undeclared intent is checked as research), logprobs up to the vocabulary, no reasoning
#: switch (``<think>`` output is captured anyway), and the dtype changes the answers. It
#: can teach ``synth train`` online, has no batch API, and its tokenizer counts prompts.
TRAITS = ProviderTraits(
    default_base_url=None, needs_intent=False, max_logprobs=None, reasoning=None,
    has_dtype=True, label="a local model", in_process=True, batch_api=False,
    token_counter=prompt_token_counter,
    requires=(("torch", "torch"), ("transformers", "transformers"), ("gguf", "gguf"),
              ("accelerate", "accelerate"), ("safetensors", "safetensors")),
    install="pip install torch==2.13.0 && pip install 'synth[local]'")

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# The teacher
# --------------------------------------------------------------------------------------------

def _batch_key(params: Params) -> tuple:
    return (params.temperature, params.top_p, params.max_tokens, params.seed, params.top_logprobs)


@dataclass(slots=True)
class _Item:
    request: Request
    future: asyncio.Future
    key: tuple
    arrived: float


class LocalTeacher:
    """A :class:`~synth.teachers.base.Teacher` backed by an in-process transformers model."""

    provider = "local"

    def __init__(self, name_or_path: str, *, dtype: str = "fp32", max_batch_size: int = 32,
                 batch_wait_s: float = 0.005, device: str | None = None):
        if dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
        if int(max_batch_size) < 1:
            raise ConfigError(f"max_batch_size must be at least 1, not {max_batch_size!r}")
        if batch_wait_s < 0:
            raise ConfigError(f"batch_wait_s must be >= 0, not {batch_wait_s!r}")
        self.model: str = str(name_or_path)
        self.model_version: str = self.model  # + "@sha256:..." of the weights once loaded
        self.base_url: str | None = None
        self.dtype = dtype
        self.max_batch_size = int(max_batch_size)
        self.batch_wait_s = float(batch_wait_s)
        if device is None:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.hf_model: Any = None   # the transformers model, once started
        self.tokenizer: Any = None  # its tokenizer (left padding), once started
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._batcher: asyncio.Task | None = None
        self._pending: list[_Item] = []
        self._inflight: list[_Item] = []
        self._wakeup: asyncio.Event | None = None
        self._start_lock: asyncio.Lock | None = None
        self._closed = False
        self._crashed: str | None = None
        self._eos: list[int] = []
        self._context: int | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the model and tokenizer in the worker thread and start the batcher."""
        if self._closed:
            raise ModelLoadError(f"local teacher {self.model!r} is closed")
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._batcher is not None:
                return
            loop = asyncio.get_running_loop()
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="synth-local")
            model, tokenizer = await loop.run_in_executor(
                self._executor, lambda: load_model(self.model, dtype=self.dtype,
                                                   device=self.device))
            self.hf_model, self.tokenizer = model, tokenizer
            sha = getattr(model.config, "synth_weights_sha256", None)
            self.model_version = f"{self.model}@sha256:{sha[:12]}" if sha else self.model
            self._eos = eos_token_ids(model, tokenizer)
            self._context = getattr(model.config, "max_position_embeddings", None)
            self._wakeup = asyncio.Event()
            self._batcher = loop.create_task(self._batch_loop(), name="synth-local-batcher")

    async def aclose(self) -> None:
        """Stop the batcher, fail every request not yet answered, release the model."""
        if self._closed:
            return
        self._closed = True
        waiting = self._pending + self._inflight
        if self._batcher is not None:
            self._batcher.cancel()
            with suppress(BaseException):  # CancelledError, or the crash already reported
                await self._batcher
            self._batcher = None
        for item in waiting + self._pending + self._inflight:
            if not item.future.done():
                item.future.set_exception(FatalRequestError(
                    "local teacher closed before the request was answered", reason="closed"))
        self._pending, self._inflight = [], []
        if self._executor is not None:
            # A generate already running finishes in its thread; nothing waits for it.
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        self.hf_model = self.tokenizer = None
        gc.collect()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    async def __aenter__(self) -> LocalTeacher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- requests ----------------------------------------------------------------------------

    async def complete(self, request: Request) -> Completion:
        """Queue one request for the next matching batch and wait for its answer."""
        if self._closed:
            raise FatalRequestError("local teacher is closed", reason="closed")
        if self._crashed:
            raise FatalRequestError(f"local batcher crashed: {self._crashed}",
                                    reason="local_error")
        if self._batcher is None:
            await self.start()
        p = request.params
        if p.dtype is not None and p.dtype != self.dtype:
            raise FatalRequestError(
                f"request asks for dtype {p.dtype!r} but this teacher runs {self.dtype!r}",
                reason="dtype_mismatch")
        loop = asyncio.get_running_loop()
        item = _Item(request, loop.create_future(), _batch_key(p), loop.time())
        self._pending.append(item)
        assert self._wakeup is not None
        self._wakeup.set()
        return await item.future

    async def _batch_loop(self) -> None:
        try:
            await self._batch_loop_inner()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must not leave callers waiting forever
            log.exception("local teacher batcher crashed")
            self._crashed = f"{type(exc).__name__}: {error_line(exc)}"
            for item in self._pending + self._inflight:
                if not item.future.done():
                    item.future.set_exception(FatalRequestError(
                        f"local batcher crashed: {self._crashed}", reason="local_error"))
            self._pending, self._inflight = [], []
            raise

    async def _batch_loop_inner(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wakeup is not None
        while True:
            self._pending = [it for it in self._pending if not it.future.done()]
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            first = self._pending[0]
            deadline = first.arrived + self.batch_wait_s
            while True:
                same = sum(1 for it in self._pending if it.key == first.key)
                remaining = deadline - loop.time()
                if same >= self.max_batch_size or remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except asyncio.TimeoutError:
                    break
            batch: list[_Item] = []
            rest: list[_Item] = []
            for it in self._pending:
                if it.future.done():
                    continue
                if it.key == first.key and len(batch) < self.max_batch_size:
                    batch.append(it)
                else:
                    rest.append(it)
            self._pending = rest
            if not batch:
                continue
            self._inflight = batch  # aclose() fails these if it cancels us mid-batch
            try:
                results = await loop.run_in_executor(
                    self._executor, self._run_batch, [it.request for it in batch])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the batch as a whole failed; never stop the loop
                results = [FatalRequestError(f"local batch failed: {type(exc).__name__}: "
                                             f"{error_line(exc)}", reason="local_error")
                           for _ in batch]
            self._inflight = []
            for it, res in zip(batch, results):
                if it.future.done():
                    continue
                if isinstance(res, BaseException):
                    it.future.set_exception(res)
                else:
                    it.future.set_result(res)

    # -- worker-thread side ------------------------------------------------------------------

    def _encode(self, request: Request) -> list[int]:
        tok = self.tokenizer
        if not getattr(tok, "chat_template", None):
            raise FatalRequestError(
                f"model {self.model!r} has no chat template; chat requests are not supported",
                reason="no_chat_template")
        p = request.params
        problem = None
        if p.max_tokens is None or p.max_tokens < 1:
            problem = f"max_tokens must be >= 1, not {p.max_tokens!r}"
        elif p.temperature is not None and p.temperature < 0:
            problem = f"temperature must be >= 0, not {p.temperature!r}"
        elif p.top_p is not None and not 0 < p.top_p <= 1:
            problem = f"top_p must be in (0, 1], not {p.top_p!r}"
        elif p.top_logprobs is not None and p.top_logprobs < 0:
            problem = f"top_logprobs must be >= 0, not {p.top_logprobs!r}"
        if problem:
            raise FatalRequestError(problem, reason="bad_params")
        try:
            text = tok.apply_chat_template(request.messages, add_generation_prompt=True,
                                           tokenize=False)
            ids = tok(text, add_special_tokens=False)["input_ids"]
        except Exception as exc:
            raise FatalRequestError(f"cannot apply the chat template: {error_line(exc)}",
                                    reason="bad_messages") from exc
        if self._context is not None and len(ids) + p.max_tokens > self._context:
            raise FatalRequestError(
                f"prompt ({len(ids)} tokens) + max_tokens ({p.max_tokens}) exceeds the "
                f"model's context of {self._context} tokens", reason="context_length")
        return list(ids)

    def _run_batch(self, requests: list[Request]) -> list[Completion | TeacherError]:
        """Template, pad and generate one batch; one result (or error) per request."""
        t0 = time.perf_counter()
        results: list[Completion | TeacherError | None] = [None] * len(requests)
        rows: list[tuple[int, list[int]]] = []
        for i, req in enumerate(requests):
            try:
                rows.append((i, self._encode(req)))
            except TeacherError as exc:
                results[i] = exc
        if rows:
            self._generate_isolated(rows, requests[rows[0][0]].params, results)
        latency = time.perf_counter() - t0
        for res in results:
            if isinstance(res, Completion):
                res.latency_s = latency
        return results  # type: ignore[return-value]

    def _generate_isolated(self, rows: list[tuple[int, list[int]]], params: Params,
                           results: list) -> None:
        """Generate; on failure, split the batch in halves so only the culprit fails."""
        try:
            for i, comp in zip((i for i, _ in rows), self._generate(rows, params)):
                results[i] = comp
            return
        except Exception as exc:
            error = exc
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()
        if len(rows) == 1:
            results[rows[0][0]] = FatalRequestError(
                f"local generate failed: {type(error).__name__}: {error_line(error)}",
                reason="local_error")
            return
        log.warning("local batch of %d failed (%s: %s); retrying in halves", len(rows),
                    type(error).__name__, error_line(error, 120))
        mid = len(rows) // 2
        self._generate_isolated(rows[:mid], params, results)
        self._generate_isolated(rows[mid:], params, results)

    def _generate(self, rows: list[tuple[int, list[int]]], params: Params) -> list[Completion]:
        import torch

        model, tok = self.hf_model, self.tokenizer
        ids_list = [ids for _, ids in rows]
        width = max(len(ids) for ids in ids_list)
        input_ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for r, ids in enumerate(ids_list):
            if ids:
                input_ids[r, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
                attention[r, width - len(ids):] = 1
        want_lp = params.top_logprobs is not None
        kwargs: dict[str, Any] = dict(
            input_ids=input_ids.to(model.device), attention_mask=attention.to(model.device),
            max_new_tokens=int(params.max_tokens), pad_token_id=tok.pad_token_id,
            eos_token_id=self._eos or None, return_dict_in_generate=True,
            output_logits=want_lp,
        )
        if params.temperature and params.temperature > 0:
            kwargs.update(do_sample=True, temperature=float(params.temperature),
                          top_p=1.0 if params.top_p is None else float(params.top_p), top_k=0)
        else:
            kwargs.update(do_sample=False)
        with torch.inference_mode():
            if params.seed is not None:
                torch.manual_seed(int(params.seed))
            out = model.generate(**kwargs)
            new = out.sequences[:, width:]
            steps = new.shape[1]
            eos = torch.tensor(self._eos, dtype=new.dtype, device=new.device)
            is_eos = torch.isin(new, eos)
            stopped = is_eos.any(dim=1)
            first_eos = is_eos.to(torch.int8).argmax(dim=1)
            n_out = torch.where(stopped, first_eos + 1, torch.full_like(first_eos, steps))
            lp = self._logprobs(out.logits, new, int(params.top_logprobs)) if want_lp else None
        n_list = n_out.tolist()
        stopped_list = stopped.tolist()
        new_list = new.tolist()
        gen = [new_list[r][: n_list[r]] for r in range(len(rows))]
        texts = tok.batch_decode(gen, skip_special_tokens=True)
        completions = []
        for r, ids in enumerate(ids_list):
            logprobs = None
            if lp is not None:
                chosen, top_v, top_i = lp
                n = n_list[r]
                top_ids = top_i[r][:n]
                flat = tok.convert_ids_to_tokens([t for row in top_ids for t in row])
                k = len(top_ids[0]) if top_ids else 0
                logprobs = {
                    "tokens": tok.convert_ids_to_tokens(gen[r]),
                    "token_ids": gen[r],
                    "logprobs": chosen[r][:n],
                    "top_tokens": [flat[j * k:(j + 1) * k] for j in range(n)],
                    "top_token_ids": top_ids,
                    "top_logprobs": top_v[r][:n],
                }
            completions.append(Completion(
                text=texts[r], finish_reason="stop" if stopped_list[r] else "length",
                model_version=self.model_version, input_tokens=len(ids), cached_input_tokens=None,
                output_tokens=n_list[r], logprobs=logprobs,
            ))
        return completions

    @staticmethod
    def _logprobs(logits: tuple, new: Any, k: int) -> tuple[list, list, list]:
        """Chosen-token logprobs and top-k alternatives from raw logits, as nested lists.

        One vectorised step per generated position over the whole batch (never per token);
        ``log_softmax`` in fp32 whatever the model dtype.
        """
        import torch

        chosen, top_v, top_i = [], [], []
        k = max(0, min(k, logits[0].shape[-1]))
        for t, step in enumerate(logits):
            lsm = torch.log_softmax(step.float(), dim=-1)
            chosen.append(lsm.gather(1, new[:, t:t + 1]).squeeze(1))
            v, i = lsm.topk(k, dim=-1)
            top_v.append(v)
            top_i.append(i)
        return (torch.stack(chosen, 1).tolist(), torch.stack(top_v, 1).tolist(),
                torch.stack(top_i, 1).tolist())


# The model store's names lived here until it moved to the ground floor (synth.models):
# still importable from here, with a DeprecationWarning, and not part of __all__.
_MOVED = ("EMBEDDED_MODELS", "EmbeddedModel", "resolve_model", "file_sha256",
          "model_cache_dir")


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import warnings

    import synth.models

    warnings.warn(f"synth.teachers.local.{name} is deprecated: use synth.models.{name}",
                  DeprecationWarning, stacklevel=2)
    return getattr(synth.models, name)
