"""Hot reload: a valid change swaps atomically, a bad file keeps the last good policy."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from handoffd.errors import ConfigError
from handoffd.policy import LoadedPolicy, PolicyHolder, ReloadOutcome
from structlog.testing import capture_logs

GOOD = "version: 1\ncloud: {allow: [lan]}\n"
BETTER = "version: 1\ncloud: {allow: [lan, openai]}\n"
BAD = "version: 1\ncloud: {allow: [lan]\n"


async def test_bad_file_keeps_the_old_policy(tmp_path: Path) -> None:
    """A reload of an invalid file fails, keeps the current policy object, counts and logs."""
    path = tmp_path / "policy.yaml"
    path.write_text(GOOD, encoding="utf-8")
    holder = await PolicyHolder.open([path], watch=False)
    try:
        before = holder.current
        path.write_text(BAD, encoding="utf-8")
        with capture_logs() as logs:
            outcome = await holder.reload()
        assert outcome is ReloadOutcome.FAILED
        assert holder.current is before
        assert holder.stats.failed == 1
        assert holder.stats.last_error is not None
        assert f"{path}:3:" in holder.stats.last_error
        failed = [e for e in logs if e["event"] == "policy.reload_failed"]
        assert failed
        assert failed[0]["kept_policy_hash"] == before.hash
    finally:
        await holder.aclose()


async def test_valid_change_swaps_and_notifies(tmp_path: Path) -> None:
    """A valid new file replaces the policy in one swap and listeners get the new one."""
    path = tmp_path / "policy.yaml"
    path.write_text(GOOD, encoding="utf-8")
    holder = await PolicyHolder.open([path], known_targets={"lan", "openai"}, watch=False)
    seen: list[LoadedPolicy] = []
    holder.on_change(seen.append)
    try:
        old = holder.current
        path.write_text(BETTER, encoding="utf-8")
        assert await holder.reload() is ReloadOutcome.CHANGED
        assert holder.current.hash != old.hash
        assert holder.current.defaults.cloud.allow == ("lan", "openai")
        assert seen == [holder.current]
        assert holder.stats.changed == 1
    finally:
        await holder.aclose()


async def test_unknown_target_after_reload_is_rejected(tmp_path: Path) -> None:
    """Reload validates fully, including target names against the daemon's targets."""
    path = tmp_path / "policy.yaml"
    path.write_text(GOOD, encoding="utf-8")
    holder = await PolicyHolder.open([path], known_targets={"lan"}, watch=False)
    try:
        path.write_text(BETTER, encoding="utf-8")
        assert await holder.reload() is ReloadOutcome.FAILED
        assert holder.current.defaults.cloud.allow == ("lan",)
    finally:
        await holder.aclose()


async def test_poll_reloads_only_when_the_files_change(tmp_path: Path) -> None:
    """check_files does nothing while the files are untouched, reloads after a write, and a
    touch that keeps the content swaps nothing."""
    path = tmp_path / "policy.yaml"
    path.write_text(GOOD, encoding="utf-8")
    holder = await PolicyHolder.open([path], watch=False)
    try:
        assert await holder.check_files() is None
        path.write_text(BETTER, encoding="utf-8")
        assert await holder.check_files() is ReloadOutcome.CHANGED
        assert await holder.check_files() is None
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        assert await holder.check_files() is ReloadOutcome.UNCHANGED
        path.write_text(BAD, encoding="utf-8")
        assert await holder.check_files() is ReloadOutcome.FAILED
        assert await holder.check_files() is None  # the same bad file is not retried
        assert holder.stats.failed == 1
    finally:
        await holder.aclose()


async def test_watcher_picks_up_a_change(tmp_path: Path) -> None:
    """With watching on, a changed file is reloaded by the background poll."""
    path = tmp_path / "policy.yaml"
    path.write_text(GOOD, encoding="utf-8")
    holder = await PolicyHolder.open([path], poll_interval_s=0.01)
    changed = asyncio.Event()
    holder.on_change(lambda _: changed.set())
    try:
        path.write_text(BETTER, encoding="utf-8")
        await asyncio.wait_for(changed.wait(), timeout=30)
        assert holder.current.defaults.cloud.allow == ("lan", "openai")
    finally:
        await holder.aclose()


async def test_daemon_does_not_start_on_a_bad_policy(tmp_path: Path) -> None:
    """Opening the holder on an invalid file raises ConfigError with the location."""
    path = tmp_path / "policy.yaml"
    path.write_text(BAD, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"policy\.yaml:3:"):
        await PolicyHolder.open([path])
