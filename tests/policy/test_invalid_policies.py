"""Invalid policy files: each is rejected at load with FILE:LINE, the offending key and the fix."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from handoffd.errors import ConfigError
from handoffd.policy import load_policy

TARGETS = {"openai", "lan"}

# (case id, file text, expected line, key path in the message, fragment of the explanation)
CASES: list[tuple[str, str, int, str, str]] = [
    ("empty-file", "", 1, "", "empty"),
    ("comments-only", "# nothing here\n", 1, "", "empty"),
    ("yaml-syntax", "version: 1\nlabels: [a, b\n", 3, "", "invalid YAML"),
    ("yaml-duplicate-key", "version: 1\ntimezone: UTC\ntimezone: CET\n", 3, "", "duplicate key"),
    ("top-level-list", "- version: 1\n", 1, "", "mapping"),
    ("bad-version", "version: 2\n", 1, "version", "unsupported policy version"),
    ("missing-version", "timezone: UTC\n", 1, "version", "required"),
    ("unknown-top-key", "version: 1\nbudgetz: {}\n", 2, "budgetz", "unknown key"),
    (
        "unknown-rule-key",
        "version: 1\nlabels:\n  - id: a\n    lables: [x]\n    labels: [y]\n",
        4,
        "labels.0.lables",
        "unknown key",
    ),
    ("labels-not-a-list", "version: 1\nlabels: health\n", 2, "labels", "valid"),
    (
        "bad-label-action",
        "version: 1\nlabels:\n  - {id: a, labels: [x], action: cloud}\n",
        3,
        "labels.0.action",
        "'local' or 'deny'",
    ),
    (
        "bad-rule-id",
        "version: 1\nlabels:\n  - {id: Health Rule, labels: [x]}\n",
        3,
        "labels.0.id",
        "rule id 'Health Rule' is not allowed: use lower-case",
    ),
    (
        "reserved-rule-id",
        "version: 1\nlabels:\n  - {id: preference.local_only, labels: [x]}\n",
        3,
        "labels.0.id",
        "reserved",
    ),
    (
        "duplicate-id-same-list",
        "version: 1\nlabels:\n  - {id: a, labels: [x]}\n  - {id: a, labels: [y]}\n",
        4,
        "labels.1.id",
        "duplicate rule id 'a'",
    ),
    (
        "duplicate-id-across-kinds",
        "version: 1\nlabels:\n  - {id: a, labels: [x]}\nrate_limits:\n"
        "  - {id: a, requests_per_minute: 5}\n",
        5,
        "rate_limits.0.id",
        "duplicate rule id 'a'",
    ),
    (
        "duplicate-id-app-vs-defaults",
        "version: 1\nlabels:\n  - {id: a, labels: [x]}\napps:\n  notes:\n    labels:\n"
        "      - {id: a, labels: [z]}\n",
        7,
        "apps.notes.labels.0.id",
        "duplicate rule id 'a'",
    ),
    (
        "negative-budget",
        "version: 1\nbudgets:\n  limits:\n    - {id: b, period: day, usd: -5}\n",
        4,
        "budgets.limits.0.usd",
        "greater than or equal to 0",
    ),
    (
        "negative-max-cost",
        "version: 1\nbudgets:\n  max_cost_per_request:\n    usd: -0.01\n",
        4,
        "budgets.max_cost_per_request.usd",
        "greater than or equal to 0",
    ),
    (
        "bad-period",
        "version: 1\nbudgets:\n  limits:\n    - {id: b, period: year, usd: 5}\n",
        4,
        "budgets.limits.0.period",
        "'day', 'week' or 'month'",
    ),
    (
        "global-budget-in-app",
        "version: 1\napps:\n  notes:\n    budgets:\n      limits:\n"
        "        - {id: b, scope: global, period: day, usd: 1}\n",
        5,
        "apps.notes.budgets",
        "top-level budgets",
    ),
    (
        "bad-privacy-regex",
        "version: 1\nprivacy:\n  custom:\n    - name: emp\n      entity_type: EMP\n"
        "      regex: 'EMP-(\\d{6}'\n",
        6,
        "privacy.custom.0.regex",
        "does not compile",
    ),
    (
        "bad-routing-regex",
        "version: 1\nrouting:\n  rules:\n    patterns:\n      - {id: p, regex: '[a-'}\n",
        5,
        "routing.rules.patterns.0.regex",
        "invalid regular expression",
    ),
    (
        "unknown-privacy-action",
        "version: 1\nprivacy:\n  actions:\n    EMAIL: shred\n",
        4,
        "privacy.actions.EMAIL",
        "'allow'",
    ),
    (
        "unknown-cloud-target",
        "version: 1\ncloud:\n  allow: [openai, anthropic]\n",
        3,
        "cloud.allow.1",
        "unknown cloud target 'anthropic'",
    ),
    (
        "unknown-target-in-app",
        "version: 1\napps:\n  notes:\n    cloud:\n      allow:\n        - mistral\n",
        6,
        "apps.notes.cloud.allow.0",
        "unknown cloud target 'mistral'",
    ),
    (
        "unknown-target-in-rate-limit",
        "version: 1\nrate_limits:\n  - id: r\n    scope: target\n    targets: [gemini]\n"
        "    requests_per_minute: 5\n",
        5,
        "rate_limits.0.targets.0",
        "unknown cloud target 'gemini'",
    ),
    (
        "repeated-target",
        "version: 1\ncloud:\n  allow: [lan, lan]\n",
        3,
        "cloud.allow",
        "listed twice",
    ),
    ("bad-timezone", "version: 1\ntimezone: Mars/Olympus\n", 2, "timezone", "unknown time zone"),
    (
        "rate-limit-limits-nothing",
        "version: 1\nrate_limits:\n  - {id: r}\n",
        3,
        "rate_limits.0",
        "limits nothing",
    ),
    (
        "rate-limit-zero-rpm",
        "version: 1\nrate_limits:\n  - {id: r, requests_per_minute: 0}\n",
        3,
        "rate_limits.0.requests_per_minute",
        "greater than or equal to 1",
    ),
    (
        "rate-limit-bad-type",
        "version: 1\nrate_limits:\n  - {id: r, tokens_per_minute: lots}\n",
        3,
        "rate_limits.0.tokens_per_minute",
        "integer",
    ),
    (
        "targets-need-target-scope",
        "version: 1\nrate_limits:\n  - {id: r, targets: [lan], requests_per_minute: 5}\n",
        3,
        "rate_limits.0",
        "needs 'scope: target'",
    ),
    (
        "disable-unknown-rule",
        "version: 1\nlabels:\n  - {id: a, labels: [x]}\napps:\n  notes:\n    disable: [b]\n",
        6,
        "apps.notes.disable.0",
        "not a default rule",
    ),
    (
        "bad-app-name",
        "version: 1\napps:\n  'bad name!': {}\n",
        3,
        "apps.bad name!.[key]",
        "app name 'bad name!' is not allowed",
    ),
    (
        "app-privacy-unknown-key",
        "version: 1\napps:\n  notes:\n    privacy:\n      actoins: {EMAIL: allow}\n",
        5,
        "apps.notes.privacy.actoins",
        "unknown key 'actoins'",
    ),
    (
        "app-privacy-bad-regex",
        "version: 1\napps:\n  notes:\n    privacy:\n      custom:\n"
        "        - {name: x, entity_type: X, regex: '(['}\n",
        6,
        "apps.notes.privacy.custom.0.regex",
        "does not compile",
    ),
    (
        "app-routing-bad-threshold",
        "version: 1\napps:\n  notes:\n    routing:\n      learned:\n        threshold: 7\n",
        6,
        "apps.notes.routing.learned.threshold",
        "less than or equal to 1",
    ),
    (
        "bad-test-outcome",
        "version: 1\ntests:\n  - name: t\n    input: {prompt: hi}\n    expect: {outcome: maybe}\n",
        5,
        "tests.0.expect.outcome",
        "'cloud', 'local' or 'deny'",
    ),
    (
        "bad-test-preference",
        "version: 1\ntests:\n  - name: t\n    input: {preference: sometimes}\n"
        "    expect: {outcome: local}\n",
        4,
        "tests.0.input.preference",
        "local_only",
    ),
]


@pytest.mark.parametrize(
    ("text", "line", "key", "fragment"),
    [pytest.param(t, ln, k, f, id=name) for name, t, ln, k, f in CASES],
)
def test_invalid_policy_is_rejected_with_location(
    tmp_path: Path, text: str, line: int, key: str, fragment: str
) -> None:
    """Each invalid file fails to load; the message names FILE:LINE, the key path and the fix."""
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_policy([path], known_targets=TARGETS)
    message = info.value.message
    assert f"{path}:{line}:" in message, message
    if key:
        assert f": {key}" in message, message
    assert fragment in message, message


def test_at_least_25_invalid_cases() -> None:
    """The table covers at least 25 distinct invalid files (the project's floor)."""
    assert len({name for name, *_ in CASES}) >= 25


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    """Several mistakes in one file come back together, one line each, so one edit fixes all."""
    path = tmp_path / "policy.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            version: 1
            labels:
              - {id: a, labels: [x]}
              - {id: a, labels: [y]}
            cloud:
              allow: [nowhere]
            """
        ),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_policy([path], known_targets=TARGETS)
    lines = info.value.message.splitlines()
    assert any(f"{path}:4:" in ln and "duplicate rule id" in ln for ln in lines), lines
    assert any(f"{path}:6:" in ln and "unknown cloud target 'nowhere'" in ln for ln in lines)


def test_duplicate_id_across_files_names_both_places(tmp_path: Path) -> None:
    """A rule id used in two files is rejected at the second, pointing back at the first."""
    first = tmp_path / "base.yaml"
    second = tmp_path / "local.yaml"
    first.write_text("version: 1\nlabels:\n  - {id: a, labels: [x]}\n", encoding="utf-8")
    second.write_text("version: 1\n\nlabels:\n  - {id: a, labels: [y]}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_policy([first, second])
    message = info.value.message
    assert f"{second}:4:" in message
    assert f"already used at {first}:3:" in message


def test_missing_file_is_reported(tmp_path: Path) -> None:
    """A policy path that does not exist is a ConfigError naming the path."""
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="no such file"):
        load_policy([missing])


def test_no_files_is_an_error() -> None:
    """Loading an empty list of files is refused with what to do."""
    with pytest.raises(ConfigError, match="at least one"):
        load_policy([])
