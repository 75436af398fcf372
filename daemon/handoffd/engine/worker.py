"""The engine worker: the one thread that runs the model, with continuous batching.

Every onnxruntime run happens on this thread (``InferenceSession.run`` releases the GIL, so the
event loop keeps serving while it runs). Requests arrive in a :class:`FairQueue`; each turn of the
loop the worker

1. drops requests whose consumer went away (``cancelled``), freeing their slot at once;
2. admits waiting requests while a slot is free and the KV budget allows (a lone request is always
   admitted), in the queue's fair order;
3. runs one *prefill turn*: at most ``prefill_chunk_tokens`` prompt tokens in all, so newcomers
   stall running streams by at most one chunk. The oldest request still reading its prompt runs
   its next chunk; the next ones, in order, run theirs too while their whole chunk fits what is
   left of the turn, newcomers admitted during the turn included (two short prompts that
   arrive close together both start before the next decode step). A prompt that starts like
   one of its app's earlier requests first gets that KV from the :class:`PrefixCache` and
   prefills the rest;
4. runs ONE decode step for every request that is generating, all slots batched in one run, then
   samples, detokenizes and stop-checks each row on its own and posts the chunks to the event
   loop in one hop.

A request joins the decode batch right after its prefill and leaves it when it ends; a request
that ends normally leaves its slot's KV (prompt and answer) in the prefix cache.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from handoffd.domain import FinishReason, TokenChunk
from handoffd.engine.limits import EngineLimits
from handoffd.engine.prefix_cache import PrefixCache
from handoffd.engine.queueing import FairQueue
from handoffd.engine.request import EngineRequest, Item, Outbox, RequestKind, describe, post
from handoffd.engine.runner import FloatArray, GraphRunner
from handoffd.engine.sampling import log_softmax
from handoffd.errors import HandoffdError, InternalError, Unavailable
from handoffd.logsetup import get_logger

log = get_logger(__name__)

_IDLE_WAIT_S = 0.5


class EngineWorker:
    """Owns the runner and the request queue; start with :meth:`start`, end with :meth:`stop`."""

    def __init__(
        self,
        runner: GraphRunner,
        limits: EngineLimits,
        *,
        eos_token_ids: frozenset[int],
    ) -> None:
        self._runner = runner
        self._limits = limits
        self._eos = eos_token_ids
        self.max_batch = max(1, min(limits.max_batch_size, runner.max_batch))
        self.kv_budget_tokens = max(1, (limits.kv_cache_mb << 20) // runner.bytes_per_token)
        self._cond = threading.Condition()
        self._queue: FairQueue[EngineRequest] = FairQueue(limits.max_queued)
        self._free_slots = list(range(self.max_batch))
        self._reserved = 0
        self._prefilling: list[EngineRequest] = []
        self._decoding: list[EngineRequest] = []
        self._stopping = False
        self._thread = threading.Thread(target=self._main, name="handoffd-engine", daemon=True)
        self.tokens_generated_total = 0
        self.prefix_cache = (
            PrefixCache(limits.prefix_cache_mb << 20, runner.bytes_per_token)
            if limits.prefix_cache_mb and runner.can_copy_kv else None
        )

    # -- called from the event loop ---------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def submit(self, request: EngineRequest) -> None:
        """Queue ``request``; :class:`ResourceExhausted` when the queue is full."""
        with self._cond:
            if self._stopping:
                raise Unavailable("the local engine is shutting down; retry on the next daemon")
            self._queue.push(request, app=request.app, priority=request.priority)
            self._cond.notify()

    def cancel(self, request: EngineRequest) -> None:
        """Drop ``request``: out of the queue now, or out of its slot at the worker's next step."""
        request.cancelled = True
        with self._cond:
            self._queue.remove(request)
            self._cond.notify()

    @property
    def active(self) -> int:
        return len(self._prefilling) + len(self._decoding)

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Fail what is queued or running with Unavailable and end the thread (blocking)."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join()

    # -- the worker thread ------------------------------------------------------------------

    def _main(self) -> None:
        log.info("engine.worker_started", max_batch=self.max_batch,
                 kv_budget_tokens=self.kv_budget_tokens)
        while True:
            with self._cond:
                if self._stopping:
                    break
                self._admit()
                if not self._prefilling and not self._decoding:
                    self._cond.wait(_IDLE_WAIT_S)
                    continue
            try:
                self._drop_cancelled()
                if self._prefilling:
                    self._prefill_turn()
                if self._decoding:
                    self._decode_step()
            except Exception as exc:  # a bug: fail what is running, keep serving
                self._fail([*self._prefilling, *self._decoding], exc)
        self._shutdown()

    def _admit(self) -> None:
        while self._free_slots:
            head = self._queue.peek()
            if head is None:
                return
            need = min(len(head.prompt_ids) + head.params.max_tokens, self._runner.capacity)
            if self.active and self._reserved + need > self.kv_budget_tokens:
                return
            self._queue.pop()
            if head.cancelled:
                continue
            head.slot = self._free_slots.pop(0)
            head.reserved_tokens = need
            head.admitted_at = time.perf_counter()
            self._reserved += need
            self._prefilling.append(head)

    def _release(self, request: EngineRequest) -> None:
        request.finished = True
        if request.slot >= 0:
            self._runner.release(request.slot)
            with self._cond:
                self._free_slots.append(request.slot)
                self._free_slots.sort()
                self._reserved -= request.reserved_tokens
            request.slot = -1

    def _finish(self, request: EngineRequest, reason: FinishReason) -> tuple[Outbox, Item]:
        self._remember(request)
        self._release(request)
        return request.outbox, request.result(reason)

    def _reuse_prefix(self, request: EngineRequest) -> None:
        """Start ``request``'s slot with the longest prefix of its prompt that its app's earlier
        requests left in the prefix cache."""
        if self.prefix_cache is None:
            return
        count, kv = self.prefix_cache.lookup(request.app, request.prompt_ids)
        if not count:
            return
        try:
            self._runner.import_kv(request.slot, kv)
        except Exception as exc:  # the prompt is then prefilled in full
            log.warning("engine.prefix_reuse_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            return
        request.prefilled = count

    def _remember(self, request: EngineRequest) -> None:
        """Copy the KV of a request that ended normally into the prefix cache: its prompt and
        every answer token but the last, which was sampled and never fed back."""
        if self.prefix_cache is None or request.slot < 0:
            return
        ids = [*request.prompt_ids, *request.output_ids[:-1]]
        if not self.prefix_cache.wants(len(ids)):
            return
        try:
            kv = self._runner.export_kv(request.slot, len(ids))
        except Exception as exc:  # a cache miss later is all this costs
            log.warning("engine.prefix_store_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            return
        self.prefix_cache.store(request.app, ids, kv)

    def _drop_cancelled(self) -> None:
        gone = [r for r in (*self._prefilling, *self._decoding) if r.cancelled]
        if not gone:
            return
        for request in gone:
            self._release(request)
            log.info("engine.request_cancelled", generated=request.generated, **describe(request))
        self._prefilling = [r for r in self._prefilling if not r.finished]
        self._decoding = [r for r in self._decoding if not r.finished]
        post([(r.outbox, r.result(FinishReason.CANCELLED)) for r in gone])

    def _fail(self, requests: Sequence[EngineRequest], exc: Exception) -> None:
        log.error("engine.run_failed", error=f"{type(exc).__name__}: {exc}"[:500],
                  requests=len(requests), exc_info=exc)
        error = exc if isinstance(exc, HandoffdError) else InternalError(
            f"local generation failed: {type(exc).__name__}"
        )
        for request in requests:
            self._release(request)
        self._prefilling = [r for r in self._prefilling if not r.finished]
        self._decoding = [r for r in self._decoding if not r.finished]
        post([(r.outbox, error) for r in requests])

    def _prefill_turn(self) -> None:
        """Prefill chunks, oldest request first, at most ``prefill_chunk_tokens`` in the turn:
        the oldest always runs one; a later one runs only if its whole chunk fits what is left
        (none is cut short to fill the turn, and none overtakes an older one). A request that
        arrives during the turn joins it while there is room, rather than wait for a decode
        step."""
        left = self._limits.prefill_chunk_tokens
        ran: list[EngineRequest] = []
        while left > 0:
            request = self._next_to_prefill(ran)
            if request is None:
                return
            if request.prefilled == 0:
                self._reuse_prefix(request)
            size = self._chunk_size(request)
            if ran and size > left:
                return
            ran.append(request)
            self._prefill_step(request, size)
            left -= size

    def _next_to_prefill(self, ran: list[EngineRequest]) -> EngineRequest | None:
        """The oldest request reading its prompt that has not run a chunk this turn; when there
        is none, newcomers are admitted first."""

        def oldest_not_run() -> EngineRequest | None:
            return next((r for r in self._prefilling if all(r is not s for s in ran)), None)

        request = oldest_not_run()
        if request is None:
            with self._cond:
                self._admit()
            request = oldest_not_run()
        return request

    def _chunk_size(self, request: EngineRequest) -> int:
        remaining = len(request.prompt_ids) - request.prefilled
        size = min(remaining, self._limits.prefill_chunk_tokens)
        if remaining - size == 1:
            size += 1  # no 1-token last chunk: int8 MatMulNBits runs one row with another kernel
        return size

    def _prefill_step(self, request: EngineRequest, size: int) -> None:
        start = request.prefilled
        chunk = request.prompt_ids[start : start + size]
        try:
            logits = self._runner.prefill(request.slot, chunk, start)
        except Exception as exc:
            self._fail([request], exc)
            return
        request.prefilled += len(chunk)
        if request.prefilled < len(request.prompt_ids):
            return
        out: list[tuple[Outbox, Item]] = []
        if request.kind is RequestKind.SCORE:
            scores = log_softmax(logits)
            result = {text: float(scores[token]) for text, token in request.candidate_ids.items()}
            out.append((request.outbox, result))
            self._remember(request)
            self._release(request)
        else:
            self._emit(request, logits, out)  # may raise: the request is still listed, so fails
        self._prefilling.remove(request)
        if not request.finished:
            self._decoding.append(request)
            # rows in slot order: the runner then reads the batch's logits without a copy
            self._decoding.sort(key=lambda r: r.slot)
        post(out)

    def _decode_step(self) -> None:
        rows = self._decoding
        try:
            logits = self._runner.decode([r.slot for r in rows], [r.next_token for r in rows])
        except Exception as exc:
            self._fail(list(rows), exc)
            return
        out: list[tuple[Outbox, Item]] = []
        for index, request in enumerate(rows):
            self._emit(request, logits[index], out)
        self._decoding = [r for r in rows if not r.finished]
        post(out)

    def _emit(
        self, request: EngineRequest, logits: FloatArray, out: list[tuple[Outbox, Item]]
    ) -> None:
        """Sample one token for ``request``, queue its chunk (and its end, if it ends)."""
        choice = request.sampler.choose(logits)
        token = choice.token_id
        request.generated += 1
        request.output_ids.append(token)
        self.tokens_generated_total += 1
        if not request.first_token_at:
            request.first_token_at = time.perf_counter()
        reason: FinishReason | None = None
        if token in self._eos:
            text = request.stops.flush()
            reason = FinishReason.STOP
        else:
            text = request.stops.push(request.decoder.step(token))
            if request.stops.stopped:
                reason = FinishReason.STOP
            elif request.generated >= request.params.max_tokens:
                text += request.stops.flush()
                reason = FinishReason.LENGTH
        out.append((request.outbox, TokenChunk(text, token, choice.logprob, choice.entropy)))
        request.next_token = token
        if reason is not None:
            out.append(self._finish(request, reason))

    def _shutdown(self) -> None:
        error = Unavailable("the local engine shut down before this request finished; retry")
        with self._cond:
            queued = []
            while (item := self._queue.pop()) is not None:
                queued.append(item)
        running = [*self._prefilling, *self._decoding]
        for request in running:
            self._release(request)
        self._prefilling, self._decoding = [], []
        post([(r.outbox, error) for r in (*queued, *running)])
        log.info("engine.worker_stopped", failed=len(queued) + len(running))
