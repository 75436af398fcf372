"""One step for the pipeline around a cloud call: rate limits, budget reservation, settlement.

    async with admission.hold(app_policy, app=app, target=target,
                              prompt_tokens=n, max_tokens=m, request_id=rid) as hold:
        completion = await cloud.chat(...)
        hold.record(completion.usage.prompt_tokens, completion.usage.completion_tokens,
                    completion.usage.cached_tokens)
    cost_usd = hold.cost_usd

Entering admits the request to the rate limits (per app and per target) and then reserves the
worst case against the budgets; if the budget refuses, the rate-limit admission is undone, so a
refused request consumes nothing. Leaving settles the real cost when :meth:`CloudHold.record`
was called. Without a recorded usage the outcome decides, failing safe:

* :class:`CloudUnavailable` or :class:`CloudError` (the provider never took or refused the
  call): the reservation is released and the tokens refunded;
* anything else (cancelled mid-stream, deadline, a bug): the call may have been billed, so the
  worst case is settled (``budget.settled_worst_case`` in the log).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from handoffd.errors import CloudError, CloudUnavailable
from handoffd.logsetup import get_logger
from handoffd.policy.app_policy import AppPolicy
from handoffd.policy.budget import BudgetLedger, BudgetReservation
from handoffd.policy.prices import nanos_to_usd
from handoffd.policy.ratelimit import RateLimiter, RateTicket

_log = get_logger(__name__)


class CloudHold:
    """An admitted, reserved cloud call. Call :meth:`record` with the usage the cloud reports."""

    __slots__ = ("_usage", "cost_usd", "reservation")

    def __init__(self, reservation: BudgetReservation) -> None:
        self.reservation = reservation
        self._usage: tuple[int, int, int] | None = None
        #: the settled cost, set when the block exits (0.0 when released)
        self.cost_usd = 0.0

    def record(
        self, prompt_tokens: int, completion_tokens: int, cached_prompt_tokens: int = 0
    ) -> None:
        """The tokens the cloud billed (its own usage report)."""
        self._usage = (prompt_tokens, completion_tokens, cached_prompt_tokens)

    @property
    def usage(self) -> tuple[int, int, int] | None:
        return self._usage


class CloudAdmission:
    """Rate limits and budgets for cloud calls; one per daemon, shared by every request."""

    def __init__(self, limiter: RateLimiter, ledger: BudgetLedger) -> None:
        self.limiter = limiter
        self.ledger = ledger

    @asynccontextmanager
    async def hold(
        self,
        policy: AppPolicy,
        *,
        app: str,
        target: str,
        prompt_tokens: int,
        max_tokens: int,
        request_id: str = "",
    ) -> AsyncIterator[CloudHold]:
        """Admit and reserve (raising :class:`ResourceExhausted` or :class:`PolicyDenied` with
        rule ids, having consumed nothing), run the block, then settle or release."""
        ticket = self.limiter.admit(
            policy.rate_limits, app=app, target=target, tokens=prompt_tokens + max_tokens
        )
        try:
            reservation = await self.ledger.reserve(
                policy,
                app=app,
                target=target,
                prompt_tokens=prompt_tokens,
                max_tokens=max_tokens,
                request_id=request_id,
            )
        except BaseException:
            ticket.cancel()
            raise
        hold = CloudHold(reservation)
        try:
            yield hold
        except BaseException as exc:
            never_billed = isinstance(exc, CloudUnavailable | CloudError)
            await asyncio.shield(self._finish(hold, ticket, release=never_billed))
            raise
        await asyncio.shield(self._finish(hold, ticket, release=False))

    async def _finish(self, hold: CloudHold, ticket: RateTicket, *, release: bool) -> None:
        usage = hold.usage
        if release and usage is None:
            ticket.release(used_tokens=0)
            await self.ledger.release(hold.reservation)
            return
        ticket.release(used_tokens=usage[0] + usage[1] if usage is not None else None)
        await self._settle(hold)

    async def _settle(self, hold: CloudHold) -> None:
        usage = hold.usage
        reservation = hold.reservation
        if usage is None:
            _log.warning(
                "budget.settled_worst_case",
                reservation=reservation.id,
                app=reservation.app,
                target=reservation.target,
                reserved_nanos=reservation.reserved_nanos,
            )
            await self.ledger.settle_worst_case(reservation)
            hold.cost_usd = nanos_to_usd(reservation.reserved_nanos)
            return
        hold.cost_usd = await self.ledger.settle(
            reservation,
            prompt_tokens=usage[0],
            completion_tokens=usage[1],
            cached_prompt_tokens=usage[2],
        )
