"""In-memory rate limits per app and per cloud target: requests/min, tokens/min, concurrency.

Requests and tokens per minute use GCRA (the generic cell rate algorithm, as in ATM networks and
redis-cell): each bucket keeps a theoretical arrival time (TAT); a cost ``c`` is admitted at
``now`` if ``max(TAT, now) + c*T - now <= period`` where ``T = period / limit``; admitting moves
TAT forward by ``c*T``. A whole minute's worth may arrive at once (burst = limit), after that
admissions spread evenly. The arithmetic is done in integers (TAT scaled by the limit, in
nanoseconds), so exactly ``limit`` simultaneous requests are admitted, never ``limit ± 1``.

Admission is one synchronous step (no ``await`` inside, plus a lock for threads): every rule that
applies is checked first, and only if all admit is any quota consumed, so a rejected request
consumes nothing. Tokens are charged as ``prompt + max_tokens`` at admission and reconciled with
the real usage afterwards (:meth:`RateTicket.release`). Shadow rules are checked and counted, a
would-be rejection is logged as ``ratelimit.shadow_rejected``, and they never reject.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType

from handoffd.errors import ResourceExhausted
from handoffd.logsetup import get_logger
from handoffd.schema.policy import RateLimitRule, RateScope

_log = get_logger(__name__)

PERIOD_NS = 60_000_000_000
#: retry hint when only a concurrency limit rejected (there is no schedule to compute it from)
CONCURRENCY_RETRY_S = 1.0
_GC_EVERY = 4096


class Gcra:
    """One GCRA bucket: ``limit`` units per ``period_ns``. Values are scaled by ``limit``."""

    __slots__ = ("limit", "period_ns", "tat")

    def __init__(self, limit: int, period_ns: int = PERIOD_NS) -> None:
        self.limit = limit
        self.period_ns = period_ns
        self.tat = 0  # theoretical arrival time in ns, times limit

    def wait_ns(self, cost: int, now_ns: int) -> int | None:
        """Nanoseconds until ``cost`` units would be admitted (0: now; None: never)."""
        if cost > self.limit:
            return None
        now_scaled = now_ns * self.limit
        new_tat = max(self.tat, now_scaled) + cost * self.period_ns
        over = new_tat - now_scaled - self.period_ns * self.limit
        return 0 if over <= 0 else -(-over // self.limit)

    def consume(self, cost: int, now_ns: int) -> None:
        self.tat = max(self.tat, now_ns * self.limit) + cost * self.period_ns

    def refund(self, cost: int) -> None:
        """Give back ``cost`` units (negative: charge more). Past TATs act as a full bucket."""
        self.tat -= cost * self.period_ns

    def idle(self, now_ns: int) -> bool:
        return self.tat <= now_ns * self.limit


@dataclass(frozen=True, slots=True)
class _Check:
    rule: RateLimitRule
    kind: str  # "rpm" | "tpm" | "concurrent"
    key: tuple[str, ...]
    cost: int

    def describe(self, subject: str) -> str:
        if self.kind == "rpm":
            return f"{self.rule.requests_per_minute} requests per minute for {subject}"
        if self.kind == "tpm":
            return f"{self.rule.tokens_per_minute} tokens per minute for {subject}"
        return f"{self.rule.max_concurrent} concurrent requests for {subject}"


class RateTicket:
    """An admitted request's hold on its rate limits. Release it exactly when the request ends
    (``with limiter.admit(...) as ticket`` does it), reporting the tokens really used."""

    __slots__ = (
        "_charged",
        "_limiter",
        "_released",
        "_request_buckets",
        "_slots",
        "_token_buckets",
    )

    def __init__(
        self,
        limiter: RateLimiter,
        request_buckets: tuple[Gcra, ...],
        token_buckets: tuple[Gcra, ...],
        slots: tuple[tuple[str, ...], ...],
        charged: int,
    ) -> None:
        self._limiter = limiter
        self._request_buckets = request_buckets
        self._token_buckets = token_buckets
        self._slots = slots
        self._charged = charged
        self._released = False

    @property
    def charged_tokens(self) -> int:
        return self._charged

    def release(self, used_tokens: int | None = None) -> None:
        """Free the concurrency slots and, if ``used_tokens`` is given, refund (or charge) the
        difference to what was charged at admission. Calling it again does nothing."""
        if self._released:
            return
        self._released = True
        refund = 0 if used_tokens is None else self._charged - max(used_tokens, 0)
        self._limiter._release(self._token_buckets, self._slots, refund)

    def cancel(self) -> None:
        """Undo the admission entirely (a later step refused the request before it was sent):
        the request and all its tokens are given back and the slots freed."""
        if self._released:
            return
        self._released = True
        self._limiter._release(self._token_buckets, self._slots, self._charged)
        self._limiter._release(self._request_buckets, (), 1)

    def __enter__(self) -> RateTicket:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class RateLimiter:
    """All rate-limit state of the daemon; one instance, shared by every request."""

    def __init__(self, *, clock_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self._clock_ns = clock_ns
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, ...], Gcra] = {}
        self._inflight: dict[tuple[str, ...], int] = {}
        self._admissions = 0
        #: rejections per rule id (enforced rules)
        self.rejected: Counter[str] = Counter()
        #: would-be rejections per rule id (shadow rules)
        self.shadow_rejected: Counter[str] = Counter()
        self.admitted = 0

    def admit(
        self, rules: tuple[RateLimitRule, ...], *, app: str, target: str | None, tokens: int
    ) -> RateTicket:
        """Admit a request of ``app`` going to cloud ``target`` (None: answered locally) that may
        use ``tokens`` (prompt + max_tokens), or raise :class:`ResourceExhausted` with the rule
        ids and ``retry_after_s``. A rejection changes no state."""
        checks = list(_checks(rules, app, target, max(tokens, 0)))
        with self._lock:
            now = self._clock_ns()
            failing: list[tuple[_Check, int | None]] = []
            for check in checks:
                wait = self._wait(check, now)
                if wait != 0:
                    failing.append((check, wait))
            enforced_fail = [(c, w) for c, w in failing if not c.rule.shadow]
            if enforced_fail:
                for c, _ in enforced_fail:
                    self.rejected[c.rule.id] += 1
                raise _rejection(enforced_fail, app, target)
            failed_keys = {c.key for c, _ in failing}
            request_buckets: list[Gcra] = []
            token_buckets: list[Gcra] = []
            slots: list[tuple[str, ...]] = []
            for check in checks:
                if check.key in failed_keys:
                    continue
                if check.kind == "concurrent":
                    self._inflight[check.key] = self._inflight.get(check.key, 0) + 1
                    slots.append(check.key)
                else:
                    bucket = self._bucket(check)
                    bucket.consume(check.cost, now)
                    (token_buckets if check.kind == "tpm" else request_buckets).append(bucket)
            self.admitted += 1
            self._admissions += 1
            if self._admissions % _GC_EVERY == 0:
                self._collect_idle(now)
        for check, _ in failing:  # only shadow rules are left here
            self.shadow_rejected[check.rule.id] += 1
            _log.info("ratelimit.shadow_rejected", rule_id=check.rule.id, app=app, target=target)
        return RateTicket(
            self, tuple(request_buckets), tuple(token_buckets), tuple(slots), max(tokens, 0)
        )

    def inflight(self) -> dict[tuple[str, ...], int]:
        """Concurrency counters in use (for status and tests)."""
        with self._lock:
            return {k: v for k, v in self._inflight.items() if v}

    def _wait(self, check: _Check, now: int) -> int | None:
        if check.kind == "concurrent":
            limit = check.rule.max_concurrent or 0
            return 0 if self._inflight.get(check.key, 0) < limit else -1
        bucket = self._buckets.get(check.key)
        if bucket is None:
            bucket = Gcra(_limit(check))
        return bucket.wait_ns(check.cost, now)

    def _bucket(self, check: _Check) -> Gcra:
        bucket = self._buckets.get(check.key)
        if bucket is None:
            bucket = self._buckets[check.key] = Gcra(_limit(check))
        return bucket

    def _release(
        self, token_buckets: tuple[Gcra, ...], slots: tuple[tuple[str, ...], ...], refund: int
    ) -> None:
        with self._lock:
            for key in slots:
                left = self._inflight.get(key, 0) - 1
                if left > 0:
                    self._inflight[key] = left
                else:
                    self._inflight.pop(key, None)
            if refund:
                for bucket in token_buckets:
                    bucket.refund(refund)

    def _collect_idle(self, now: int) -> None:
        for key in [k for k, b in self._buckets.items() if b.idle(now)]:
            del self._buckets[key]


def _limit(check: _Check) -> int:
    rule = check.rule
    value = rule.requests_per_minute if check.kind == "rpm" else rule.tokens_per_minute
    return value or 1


def _checks(
    rules: tuple[RateLimitRule, ...], app: str, target: str | None, tokens: int
) -> Iterator[_Check]:
    for rule in rules:
        if rule.scope is RateScope.APP:
            if target is None and rule.applies_to != "all":
                continue
            subject = ("app", app)
        else:
            if target is None or (rule.targets and target not in rule.targets):
                continue
            subject = ("target", target)
        # the limit's value is part of the key: a reloaded policy with another limit starts a
        # fresh bucket instead of misreading the old one's scaled state
        if rule.requests_per_minute is not None:
            key = (rule.id, "rpm", str(rule.requests_per_minute), *subject)
            yield _Check(rule, "rpm", key, 1)
        if rule.tokens_per_minute is not None:
            key = (rule.id, "tpm", str(rule.tokens_per_minute), *subject)
            yield _Check(rule, "tpm", key, tokens)
        if rule.max_concurrent is not None:
            yield _Check(rule, "concurrent", (rule.id, "concurrent", *subject), 1)


def _rejection(
    failing: list[tuple[_Check, int | None]], app: str, target: str | None
) -> ResourceExhausted:
    never = [c for c, w in failing if w is None]
    rule_ids = tuple(dict.fromkeys(c.rule.id for c, _ in failing))
    if never:
        check = never[0]
        message = (
            f"rate limit {check.rule.id!r}: the request may use {check.cost} tokens, more than "
            f"the {check.describe(_subject(app, target, check))}: lower max_tokens or "
            "shorten the prompt"
        )
        _log.info("ratelimit.rejected", rule_ids=rule_ids, app=app, target=target, retry=None)
        return ResourceExhausted(message, retry_after_s=None, rule_ids=rule_ids)
    waits = [CONCURRENCY_RETRY_S if w == -1 else (w or 0) / 1e9 for _, w in failing]
    retry = max(waits)
    check = failing[0][0]
    message = (
        f"rate limit {check.rule.id!r} reached ({check.describe(_subject(app, target, check))}): "
        f"retry in {math.ceil(retry * 10) / 10:.1f} s"
    )
    _log.info("ratelimit.rejected", rule_ids=rule_ids, app=app, target=target, retry_after_s=retry)
    return ResourceExhausted(message, retry_after_s=retry, rule_ids=rule_ids)


def _subject(app: str, target: str | None, check: _Check) -> str:
    return f"app {app!r}" if check.rule.scope is RateScope.APP else f"target {target!r}"
