"""Fixtures for the auth tests."""

# log hygiene for these tests until tests/conftest.py enables tests.log_scan suite-wide
from tests.log_scan import _log_hygiene, pytest_configure  # noqa: F401
