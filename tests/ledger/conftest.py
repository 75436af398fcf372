"""Ledger test fixtures: a device key, and a populated ledger with an exported checkpoint."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from handoffd.ledger import Checkpoint

from tests.ledger.ledger_testkit import Population, SteppingClock, open_ledger, populate


@dataclass
class PopulatedLedger:
    path: Path
    key: Ed25519PrivateKey
    population: Population
    #: exported at the end of population, kept "off the device"
    exported: Checkpoint
    exported_file: Path


@pytest.fixture
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


async def _build(directory: Path, key: Ed25519PrivateKey) -> PopulatedLedger:
    path = directory / "ledger.sqlite3"
    clock = SteppingClock()
    ledger = await open_ledger(path, key, clock=clock)
    try:
        pop = await populate(ledger, clock)
        exported = await ledger.checkpoint(directory / "offsite")
    finally:
        await ledger.aclose()
    (exported_file,) = (directory / "offsite").iterdir()
    return PopulatedLedger(path, key, pop, exported, exported_file)


@pytest.fixture(scope="session")
def populated_template(tmp_path_factory: pytest.TempPathFactory) -> PopulatedLedger:
    directory = tmp_path_factory.mktemp("populated")
    return asyncio.run(_build(directory, Ed25519PrivateKey.generate()))


@pytest.fixture
def populated(tmp_path: Path, populated_template: PopulatedLedger) -> PopulatedLedger:
    """A closed ledger of 3 days x 3 apps (60 entries) with a checkpoint exported at its head
    (a private copy of a session-wide template, so tests may tamper with it)."""
    path = tmp_path / "ledger.sqlite3"
    shutil.copyfile(populated_template.path, path)
    exported_file = tmp_path / populated_template.exported_file.name
    shutil.copyfile(populated_template.exported_file, exported_file)
    t = populated_template
    return PopulatedLedger(path, t.key, t.population, t.exported, exported_file)
