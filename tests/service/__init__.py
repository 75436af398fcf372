"""Tests of the production service parts: systemd notify/watchdog/reload, metrics, unit files."""
