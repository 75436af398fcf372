"""Hot reload: keep the current policy, swap in a new one only when it is fully valid.

:class:`PolicyHolder` owns the current :class:`LoadedPolicy`. ``await holder.reload()`` (the
server calls it on SIGHUP) and a cheap poll of the files' (mtime, size, inode) every
``poll_interval_s`` seconds load the files again on the holder's own thread, validate everything
and swap the reference in one assignment: a request sees the old policy or the new one, never a
mix. A bad file keeps the last good policy, logs ``policy.reload_failed`` and counts the failure.
A changed file whose content hash is unchanged (``touch``) swaps nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from handoffd.errors import ConfigError
from handoffd.logsetup import get_logger
from handoffd.policy.app_policy import LoadedPolicy
from handoffd.policy.loader import load_policy, policy_from_text

_log = get_logger(__name__)

Fingerprint = tuple[tuple[int, int, int] | None, ...]


class ReloadOutcome(StrEnum):
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    FAILED = "failed"


@dataclass(slots=True)
class ReloadStats:
    """Counters for status and metrics."""

    changed: int = 0
    unchanged: int = 0
    failed: int = 0
    last_error: str | None = None
    last_changed_at: float | None = None
    last_failed_at: float | None = None


def _fingerprint(paths: Sequence[Path]) -> Fingerprint:
    prints: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            prints.append(None)
        else:
            prints.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(prints)


class PolicyHolder:
    """The daemon's current policy and its reloads. Build it with :meth:`open`."""

    def __init__(
        self,
        paths: Sequence[Path],
        policy: LoadedPolicy,
        fingerprint: Fingerprint,
        *,
        known_targets: Collection[str] | None,
        poll_interval_s: float,
        executor: ThreadPoolExecutor,
    ) -> None:
        self.paths = tuple(paths)
        self._policy = policy
        self._fingerprint = fingerprint
        self._known_targets = known_targets
        self._poll_interval_s = poll_interval_s
        self._executor = executor
        self._lock = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[LoadedPolicy], None]] = []
        self.stats = ReloadStats()

    @classmethod
    async def open(
        cls,
        paths: Sequence[Path],
        *,
        known_targets: Collection[str] | None = None,
        poll_interval_s: float = 5.0,
        watch: bool = True,
    ) -> PolicyHolder:
        """Load ``paths`` (raising :class:`ConfigError` if invalid: the daemon must not start on
        a bad policy) and, with ``watch``, start polling them every ``poll_interval_s``. No
        paths: the built-in policy under which nothing leaves the device."""
        if poll_interval_s <= 0:
            raise ConfigError(f"poll_interval_s must be > 0, got {poll_interval_s}")
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="policy-loader")
        loop = asyncio.get_running_loop()
        try:
            fingerprint, policy = await loop.run_in_executor(
                executor, _load, tuple(paths), known_targets
            )
        except BaseException:
            executor.shutdown(wait=False)
            raise
        holder = cls(
            paths,
            policy,
            fingerprint,
            known_targets=known_targets,
            poll_interval_s=poll_interval_s,
            executor=executor,
        )
        _log.info("policy.loaded", policy_hash=policy.hash, files=[str(p) for p in paths])
        if not paths:
            _log.warning("policy.builtin_local_only", hint="set policy.files in the config")
        if watch and paths:
            holder._watcher = asyncio.create_task(holder._watch(), name="policy-watch")
        return holder

    @property
    def current(self) -> LoadedPolicy:
        """The policy in force. Read it once per request and use that object throughout."""
        return self._policy

    def on_change(self, listener: Callable[[LoadedPolicy], None]) -> None:
        """Call ``listener(new_policy)`` after every successful swap."""
        self._listeners.append(listener)

    async def reload(self) -> ReloadOutcome:
        """Load the files again; swap if valid and different; keep the old policy on error."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            try:
                fingerprint, policy = await loop.run_in_executor(
                    self._executor, _load, self.paths, self._known_targets
                )
            except ConfigError as exc:
                self._fingerprint = await loop.run_in_executor(
                    self._executor, _fingerprint, self.paths
                )
                self.stats.failed += 1
                self.stats.last_error = exc.message
                self.stats.last_failed_at = time.time()
                _log.error(
                    "policy.reload_failed",
                    error=exc.message,
                    kept_policy_hash=self._policy.hash,
                    failures=self.stats.failed,
                )
                return ReloadOutcome.FAILED
            self._fingerprint = fingerprint
            if policy.hash == self._policy.hash:
                self.stats.unchanged += 1
                return ReloadOutcome.UNCHANGED
            previous, self._policy = self._policy, policy
            self.stats.changed += 1
            self.stats.last_error = None
            self.stats.last_changed_at = time.time()
        _log.info("policy.reloaded", policy_hash=policy.hash, previous_hash=previous.hash)
        for listener in self._listeners:
            listener(policy)
        return ReloadOutcome.CHANGED

    async def check_files(self) -> ReloadOutcome | None:
        """One poll: reload if the files' fingerprint changed since the last load or attempt."""
        loop = asyncio.get_running_loop()
        fingerprint = await loop.run_in_executor(self._executor, _fingerprint, self.paths)
        if fingerprint == self._fingerprint:
            return None
        return await self.reload()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._poll_interval_s)
            try:
                await self.check_files()
            except Exception:  # never let the watcher die; the next poll tries again
                _log.exception("policy.watch_error")

    async def aclose(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        self._executor.shutdown(wait=True)


#: the policy in force when no file is configured: nothing leaves the device
BUILTIN_LOCAL_ONLY = "version: 1\ncloud: {id: cloud.not_configured, allow: []}\n"


def _load(
    paths: tuple[Path, ...], known_targets: Collection[str] | None
) -> tuple[Fingerprint, LoadedPolicy]:
    if not paths:
        return (), policy_from_text(BUILTIN_LOCAL_ONLY, "<built-in: local only>")
    # fingerprint first: a write during the load changes it again, and the next poll reloads
    fingerprint = _fingerprint(paths)
    return fingerprint, load_policy(paths, known_targets=known_targets)
