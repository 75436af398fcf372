"""Build the daemon's components from its settings (part of the composition root).

Everything that owns a file, a thread or a connection is opened here and closed by
:meth:`Components.aclose`, in reverse order. The ledger is always opened (the Audit service reads
it, and a handoff is impossible without it); the cloud leg exists only when cloud targets are
configured. A policy with no files is the built-in one: nothing leaves the device.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from handoffd.ledger import AuditLedger, load_or_create_hmac_key, load_or_create_signing_key
from handoffd.logsetup import get_logger
from handoffd.metrics import Metrics
from handoffd.pipeline import ChatPipeline, LocalModel
from handoffd.pipeline.handoff import CloudLeg
from handoffd.policy import BudgetLedger, CloudAdmission, PolicyEvaluator, PolicyHolder, RateLimiter
from handoffd.settings import Settings, state_dir

if TYPE_CHECKING:
    from handoffd.cloud import CloudClient

log = get_logger(__name__)


def _expand(path: Path) -> Path:
    return path.expanduser()


@dataclass
class Components:
    """What the pipeline needs besides the model, and how to close it."""

    ledger: AuditLedger
    policy: PolicyHolder
    cloud: CloudClient | None = None
    budget: BudgetLedger | None = None
    limiter: RateLimiter = field(default_factory=RateLimiter)
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @classmethod
    async def open(cls, settings: Settings) -> Components:
        state = state_dir()
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        closers: list[Callable[[], Awaitable[None]]] = []
        try:
            ledger = await AuditLedger.open(
                _expand(settings.ledger.resolved_path(state)),
                hmac_key=load_or_create_hmac_key(state),
                signing_key=load_or_create_signing_key(state),
                store_redacted_prompt=settings.ledger.store_redacted_prompt,
                checkpoint_dir=_expand(settings.ledger.resolved_checkpoint_dir(state)),
                checkpoint_every_s=settings.ledger.checkpoint_every_s,
            )
            closers.append(ledger.aclose)
            targets = settings.cloud.targets
            policy = await PolicyHolder.open(
                [_expand(p) for p in settings.policy.files],
                known_targets=tuple(targets),
                poll_interval_s=settings.policy.poll_interval_s,
            )
            closers.append(policy.aclose)
            components = cls(
                ledger=ledger, policy=policy, limiter=RateLimiter(), _closers=closers
            )
            if targets:
                # imported only when configured: the OpenAI SDK costs ~2 s of start-up CPU
                from handoffd.cloud import CloudClient

                components.cloud = CloudClient(settings.cloud)
                closers.append(components.cloud.aclose)
                components.budget = await BudgetLedger.open(
                    _expand(settings.policy.budget_db or state / "budget.sqlite3"),
                    {name: t.price_usd_per_mtok for name, t in targets.items()},
                    reservation_ttl_s=settings.policy.reservation_ttl_s,
                    durable=settings.policy.durable_budget,
                )
                closers.append(components.budget.aclose)
        except BaseException:
            for close in reversed(closers):
                with contextlib.suppress(Exception):
                    await close()
            raise
        log.info(
            "components.opened",
            cloud_targets=sorted(targets),
            policy_hash=policy.current.hash,
            ledger=str(settings.ledger.resolved_path(state)),
        )
        return components

    def pipeline(
        self, model: LocalModel, settings: Settings, metrics: Metrics | None
    ) -> ChatPipeline:
        leg = None
        if self.cloud is not None and self.budget is not None:
            leg = CloudLeg(self.cloud, CloudAdmission(self.limiter, self.budget), self.ledger)
        prices = {name: t.price_usd_per_mtok for name, t in settings.cloud.targets.items()}
        return ChatPipeline(
            model,
            settings,
            policy=self.policy,
            evaluator=PolicyEvaluator(prices),
            cloud=leg,
            limiter=self.limiter,
            metrics=metrics,
        )

    async def aclose(self) -> None:
        for close in reversed(self._closers):
            try:
                await close()
            except Exception as exc:
                log.error("components.close_failed", error_class=type(exc).__name__)
        self._closers.clear()
