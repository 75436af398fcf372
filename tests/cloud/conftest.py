"""Fixtures for the cloud client tests: a FakeCloud per test and a client factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from handoffd.cloud import CloudClient
from handoffd.domain import GenerationParams, Message, Role
from handoffd.schema.cloud import CloudSettings

from tests.fakecloud import FakeCloud

API_KEY = "sk-test-Zq8v3LrT1mN0pXcY7wK2"
MESSAGES = (Message(Role.SYSTEM, "Be brief."), Message(Role.USER, "What is the capital of France?"))
PARAMS = GenerationParams(max_tokens=64)

MakeClient = Callable[..., CloudClient]


@pytest.fixture
async def cloud() -> AsyncIterator[FakeCloud]:
    async with FakeCloud(reply="Paris is the capital of France.", api_key=API_KEY) as fake:
        yield fake


def target_settings(url: str, **overrides: Any) -> dict[str, Any]:
    """One target for ``url`` with fast test-friendly retries; ``overrides`` replace keys."""
    target: dict[str, Any] = {
        "base_url": url,
        "model": "fake-model",
        "api_key_env": "FAKE_CLOUD_KEY",
        "retry_backoff_s": 0.01,
        "max_retries": 2,
        "timeouts": {"connect_s": 2, "first_byte_s": 5, "total_s": 20},
    }
    target.update(overrides)
    return target


@pytest.fixture
async def make_client(cloud: FakeCloud) -> AsyncIterator[MakeClient]:
    """Build CloudClients on target 'fake' pointing at the fake cloud; closed after the test."""
    made: list[CloudClient] = []

    def make(**overrides: Any) -> CloudClient:
        settings = CloudSettings.model_validate(
            {"targets": {"fake": target_settings(cloud.url, **overrides)}}
        )
        client = CloudClient(settings, environ={"FAKE_CLOUD_KEY": API_KEY})
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()
