"""``LocalEngine``: the on-device model as the pipeline and transports see it.

Loading (blocking; the server calls it in a thread) reads the folder (:mod:`.folder`), verifies
its manifest when asked to, opens the session on the best provider (:mod:`.session`), picks the
KV strategy for the graph (GroupQueryAttention graphs: one shared max-length buffer,
:mod:`.kv_shared`; others: graph-side concatenation, :mod:`.kv_concat`), warms the session up and
starts the worker thread (:mod:`.worker`). Generation is then ``async for chunk in
engine.generate(...)`` (see :class:`GenerationStream` for the finish reason and cancellation).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from handoffd.domain import GenerationParams, Message, ModelInfo, Priority
from handoffd.engine.chat_template import FALLBACK_TEMPLATE, ChatTemplate, find_template_source
from handoffd.engine.folder import ModelSpec, read_json_if_exists, read_model_folder
from handoffd.engine.kv_concat import ConcatKvRunner
from handoffd.engine.kv_shared import SharedKvRunner
from handoffd.engine.limits import EngineLimits
from handoffd.engine.request import EngineRequest, Outbox, RequestKind
from handoffd.engine.runner import GraphRunner
from handoffd.engine.sampling import TokenSampler
from handoffd.engine.session import (
    gqa_kv_device,
    kv_device,
    matmul_nbits_bits,
    numpy_type,
    open_session,
    scan_ops,
)
from handoffd.engine.stops import StopSequenceFilter
from handoffd.engine.stream import GenerationStream
from handoffd.engine.text import TextCodec
from handoffd.engine.worker import EngineWorker
from handoffd.errors import ContextOverflow, InvalidRequest, ModelError
from handoffd.logsetup import get_logger
from handoffd.settings import ModelSettings

log = get_logger(__name__)

MANIFEST_FILE = "handoffd-manifest.json"
#: prompts shorter than this are rendered and tokenized on the event loop (well under 1 ms)
_INLINE_PROMPT_CHARS = 16_384


@dataclass(frozen=True, slots=True)
class EngineStats:
    active: int
    queued: int
    tokens_generated_total: int
    #: prompt tokens whose KV came from the prefix cache instead of a prefill
    prompt_tokens_reused_total: int = 0


def _manifest_facts(path: Path, verify: bool) -> dict[str, str]:
    if not verify or not (path / MANIFEST_FILE).is_file():
        return {}
    from handoffd.engine.manifest import verify_manifest

    manifest = verify_manifest(path)  # ModelError when a file is missing or altered
    return {"name": manifest.name, "source": manifest.source, "precision": manifest.precision}


def _precision(spec: ModelSpec, runner_dtype: str) -> str:
    bits = matmul_nbits_bits(spec.onnx_path)
    return f"int{bits}" if bits else runner_dtype


class LocalEngine:
    """The loaded model: prompt rendering, token counting, generation, scoring."""

    def __init__(
        self, info: ModelInfo, spec: ModelSpec, codec: TextCodec, template: ChatTemplate,
        worker: EngineWorker, context_window: int, max_new_tokens: int,
    ) -> None:
        self.info = info
        self.spec = spec
        self.codec = codec
        self.template = template
        self._worker = worker
        self._window = context_window
        self._max_new_tokens = max_new_tokens

    # -- loading ----------------------------------------------------------------------------

    @classmethod
    def load(cls, settings: ModelSettings, limits: EngineLimits | None = None) -> LocalEngine:
        """Open the model folder of ``settings`` and start the worker (blocking, seconds)."""
        limits = limits or EngineLimits.from_settings(settings)
        path = settings.resolved_path()
        spec = read_model_folder(path)
        facts = _manifest_facts(path, settings.verify_manifest)
        tokenizer_config = read_json_if_exists(path / "tokenizer_config.json")
        codec = TextCodec.from_folder(path, tokenizer_config)
        source = find_template_source(path, tokenizer_config)
        if source is None:
            log.warning("engine.no_chat_template", path=str(path))
        template = ChatTemplate(
            source or FALLBACK_TEMPLATE, bos_token=codec.bos_token, eos_token=codec.eos_token,
            where=str(path / "tokenizer_config.json"),
        )
        eos = set(spec.eos_token_ids)
        eos_from_tokenizer = codec.token_id(codec.eos_token)
        if eos_from_tokenizer is not None:
            eos.add(eos_from_tokenizer)
        if not eos:
            log.warning("engine.no_eos_token", path=str(path))
        window = spec.context_window
        if limits.max_context_tokens:
            window = min(window, limits.max_context_tokens)
        session = open_session(spec.onnx_path, settings.providers, settings.intra_op_threads)
        gqa = "GroupQueryAttention" in scan_ops(spec.onnx_path, ["GroupQueryAttention"])
        runner_class = SharedKvRunner if gqa else ConcatKvRunner
        max_batch = limits.max_batch_size
        if gqa:
            max_batch = _gqa_max_batch(session, spec, limits, window)
        runner: GraphRunner = runner_class(session, spec, max_batch=max_batch, capacity=window)
        _warm_up(runner)
        precision = facts.get("precision") or _precision(spec, _kv_precision(session, spec))
        info = ModelInfo(
            name=settings.name or facts.get("name") or path.name,
            layout=spec.layout,
            precision=precision,
            context_window=window,
            execution_provider=session.get_providers()[0],
            path=str(path),
            source=facts.get("source", ""),
        )
        worker = EngineWorker(runner, limits, eos_token_ids=frozenset(eos))
        worker.start()
        log.info(
            "engine.loaded", name=info.name, layout=info.layout, precision=info.precision,
            provider=info.execution_provider, kv=runner_class.__name__,
            context_window=window, max_batch=worker.max_batch, path=str(path),
        )
        return cls(info, spec, codec, template, worker, window, settings.max_new_tokens_limit)

    # -- prompts ----------------------------------------------------------------------------

    def render_prompt(
        self, messages: Sequence[Message], *, tools: Sequence[Mapping[str, Any]] | None = None
    ) -> str:
        """The prompt text of ``messages`` in the model's own chat template."""
        return self.template.render(messages, tools=tools, add_generation_prompt=True)

    def encode(self, text: str) -> list[int]:
        return self.codec.encode(text)

    def count_prompt_tokens(
        self, messages: Sequence[Message], *, tools: Sequence[Mapping[str, Any]] | None = None
    ) -> int:
        return len(self.encode(self.render_prompt(messages, tools=tools)))

    def _check_fits(self, prompt_tokens: int, max_tokens: int) -> None:
        if max_tokens < 1 or max_tokens > self._max_new_tokens:
            raise InvalidRequest(
                f"max_tokens={max_tokens} is out of range; use 1..{self._max_new_tokens} "
                "(model.max_new_tokens_limit)",
                field="params.max_tokens",
            )
        if prompt_tokens >= self._window:
            raise ContextOverflow(
                f"the prompt alone is {prompt_tokens} tokens, more than the local model's context "
                f"window of {self._window} (plus max_tokens {max_tokens}): shorten the "
                "conversation or let the request go to the cloud",
                field="messages",
            )
        if prompt_tokens + max_tokens > self._window:
            raise ContextOverflow(
                f"the prompt ({prompt_tokens} tokens) plus max_tokens ({max_tokens}) is "
                f"{prompt_tokens + max_tokens} tokens, more than the local model's context window "
                f"of {self._window}: shorten the conversation, lower max_tokens to at most "
                f"{max(self._window - prompt_tokens, 0)}, or let the request go to the cloud",
                field="messages",
            )

    # -- generation -------------------------------------------------------------------------

    def generate(
        self,
        messages: Sequence[Message],
        params: GenerationParams,
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        priority: Priority = Priority.INTERACTIVE,
        app: str = "default",
    ) -> GenerationStream:
        """Stream the answer to ``messages``; see :class:`GenerationStream`."""
        messages = tuple(messages)

        def prepare(outbox: Outbox) -> EngineRequest:
            ids = self.encode(self.render_prompt(messages, tools=tools))
            self._check_fits(len(ids), params.max_tokens)
            return self._request(RequestKind.GENERATE, ids, params, outbox, app, priority)

        size = sum(len(m.content) for m in messages)
        return GenerationStream(self._worker, prepare, inline=size < _INLINE_PROMPT_CHARS)

    async def score_next_token(
        self, messages: Sequence[Message], candidates: Sequence[str], *, suffix: str = "",
        app: str = "default",
    ) -> dict[str, float]:
        """Log-probabilities of the first token of each candidate after the rendered prompt
        plus ``suffix`` (one prefill, nothing generated; its KV stays in ``app``'s prefix
        cache for the generation that usually follows)."""
        text = self.render_prompt(messages) + suffix
        ids = self.encode(text)
        self._check_fits(len(ids), 1)
        firsts = {c: self._first_token(text, ids, c) for c in dict.fromkeys(candidates) if c}
        outbox = Outbox(asyncio.get_running_loop())
        request = self._request(
            RequestKind.SCORE, ids, GenerationParams(max_tokens=1), outbox, app,
            Priority.INTERACTIVE,
        )
        request.candidate_ids = firsts
        self._worker.submit(request)
        try:
            item = await outbox.queue.get()
        except asyncio.CancelledError:
            self._worker.cancel(request)
            raise
        if isinstance(item, BaseException):
            raise item
        if not isinstance(item, dict):
            raise TypeError(f"unexpected engine output {type(item).__name__}")
        return item

    def _request(
        self, kind: RequestKind, ids: list[int], params: GenerationParams, outbox: Outbox,
        app: str, priority: Priority,
    ) -> EngineRequest:
        return EngineRequest(
            kind, ids, params, outbox,
            sampler=TokenSampler(params, ids),
            decoder=self.codec.decoder(),
            stops=StopSequenceFilter(params.stop),
            app=app, priority=priority,
        )

    def _first_token(self, text: str, ids: list[int], candidate: str) -> int:
        """The id the model would emit first to write ``candidate`` right after ``text``."""
        joined = self.encode(text + candidate)
        if joined[: len(ids)] == ids and len(joined) > len(ids):
            return joined[len(ids)]
        alone = self.encode(candidate)
        if not alone:
            raise InvalidRequest(
                f"candidate {candidate!r} encodes to no tokens", field="candidates"
            )
        return alone[0]

    # -- state ------------------------------------------------------------------------------

    @property
    def stats(self) -> EngineStats:
        return EngineStats(
            active=self._worker.active,
            queued=self._worker.queued,
            tokens_generated_total=self._worker.tokens_generated_total,
            prompt_tokens_reused_total=(
                cache.tokens_reused if (cache := self._worker.prefix_cache) else 0
            ),
        )

    @property
    def alive(self) -> bool:
        """Whether the worker thread is running (for health checks and the watchdog)."""
        return self._worker.alive

    async def aclose(self) -> None:
        """Fail queued and running requests with Unavailable and stop the worker."""
        await asyncio.to_thread(self._worker.stop)


def _kv_type(session: Any, spec: ModelSpec) -> np.dtype[Any]:
    past = next((i for i in session.get_inputs() if i.name == spec.past_key_name % 0), None)
    if past is None:
        raise ModelError(f"{spec.onnx_path}: no input {spec.past_key_name % 0}; rebuild the model")
    return np.dtype(numpy_type(past.type, str(spec.onnx_path)))


def _gqa_max_batch(session: Any, spec: ModelSpec, limits: EngineLimits, window: int) -> int:
    """Slots for a GQA graph: all of ``max_batch_size`` with host KV (committed page by page);
    with device KV (committed in full) as many as the KV budget holds."""
    kv_on = gqa_kv_device(session, _kv_type(session, spec))
    if kv_on != kv_device(session):
        log.warning(
            "engine.attention_on_cpu", provider=session.get_providers()[0],
            hint="this float32 model's attention has no kernel on the accelerator and runs on "
            "the CPU; for full speed use a float16 build made for that accelerator",
        )
    if kv_on == "cpu":
        return limits.max_batch_size
    row_bytes = window * _kv_bytes_per_token(session, spec)
    return max(1, min(limits.max_batch_size, (limits.kv_cache_mb << 20) // row_bytes))


def _kv_precision(session: Any, spec: ModelSpec) -> str:
    return {np.dtype(np.float16): "fp16"}.get(_kv_type(session, spec), "fp32")


def _kv_bytes_per_token(session: Any, spec: ModelSpec) -> int:
    itemsize = _kv_type(session, spec).itemsize
    return 2 * spec.num_layers * spec.num_kv_heads * spec.head_size * itemsize


def _warm_up(runner: GraphRunner) -> None:
    """One prefill and one decode step, so that the first request does not pay onnxruntime's
    first-run costs."""
    runner.prefill(0, [0, 0, 0, 0], 0)
    runner.decode([0], [0])
    runner.release(0)
