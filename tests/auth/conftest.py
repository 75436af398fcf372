"""Fixtures for the auth tests."""

