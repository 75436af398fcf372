"""Loading policies: merge rules (apps over defaults, files in order), hashing, app lookup."""

from __future__ import annotations

import textwrap
from pathlib import Path

from handoffd.policy import DEFAULTS, load_policy, policy_from_text
from handoffd.schema.policy import Period
from handoffd.schema.privacy import Action

BASE = textwrap.dedent(
    """\
    version: 1
    timezone: Europe/Berlin
    privacy:
      default_action: redact
      actions: {EMAIL: pseudonymize, SECRET: block}
      phone_regions: [US, GB]
    labels:
      - {id: labels.health, labels: [Health, medical]}
    cloud:
      allow: [openai, lan]
    budgets:
      max_cost_per_request: {usd: 0.05}
      limits:
        - {id: budget.all.day, scope: global, period: day, usd: 5}
        - {id: budget.app.day, period: day, usd: 1}
    rate_limits:
      - {id: rate.app, requests_per_minute: 30}
    routing:
      strategies: [rules]
      rules: {max_local_prompt_tokens: 100}
    apps:
      notes:
        privacy:
          actions: {EMAIL: allow}
        cloud: {allow: [lan]}
        disable: [budget.app.day, rate.app]
        budgets:
          max_cost_per_request: null
          limits:
            - {id: budget.notes.week, period: week, usd: 2}
        routing:
          rules: {max_local_prompt_tokens: 500}
    """
)


def test_app_section_merges_into_defaults() -> None:
    """Mappings merge key by key (the app wins), rule lists are inherited minus `disable` plus
    the app's own, and `max_cost_per_request: null` removes the inherited limit."""
    policy = policy_from_text(BASE)
    notes = policy.for_app("notes")
    assert notes.privacy.actions == {"EMAIL": Action.ALLOW, "SECRET": Action.BLOCK}
    assert notes.privacy.phone_regions == ("US", "GB")
    assert notes.privacy.default_action is Action.REDACT
    assert notes.cloud.allow == ("lan",)
    assert [b.id for b in notes.budgets] == ["budget.all.day", "budget.notes.week"]
    assert notes.budgets[1].period is Period.WEEK
    assert notes.rate_limits == ()
    assert notes.max_cost_per_request is None
    assert notes.routing.strategies == ("rules",)
    assert notes.routing.rules.max_local_prompt_tokens == 500
    assert [r.id for r in notes.labels] == ["labels.health"]


def test_apps_without_a_section_get_the_defaults() -> None:
    """An app with no section of its own gets the defaults object, unchanged."""
    policy = policy_from_text(BASE)
    other = policy.for_app("calendar")
    assert other is policy.defaults
    assert other.name == DEFAULTS
    assert other.cloud.allow == ("openai", "lan")
    assert [b.id for b in other.budgets] == ["budget.all.day", "budget.app.day"]
    assert other.max_cost_per_request is not None
    assert other.max_cost_per_request.usd == 0.05
    assert policy.for_app("notes") is policy.for_app("notes")


def test_labels_are_matched_case_insensitively_in_the_index() -> None:
    """Labels are stored casefolded, so 'Health' in the file matches 'health' in a request."""
    policy = policy_from_text(BASE)
    assert set(policy.defaults.label_index) == {"health", "medical"}


def test_hash_ignores_formatting_and_follows_content() -> None:
    """The hash is over the canonical content: comments, key order and flow style do not
    change it; any change of meaning does."""
    a = policy_from_text("version: 1\ncloud: {allow: [lan]}\ntimezone: UTC\n")
    b = policy_from_text("# comment\ntimezone: UTC\ncloud:\n  allow:\n    - lan\nversion: 1\n")
    c = policy_from_text("version: 1\ncloud: {allow: [openai]}\n")
    assert a.hash == b.hash
    assert a.hash != c.hash
    assert len(a.hash) == 64
    assert a.for_app("x").policy_hash == a.hash


def test_files_combine_in_order(tmp_path: Path) -> None:
    """A second file merges over the first: mappings key by key, rule lists concatenated, other
    values replaced; apps defined in either file are kept."""
    base = tmp_path / "base.yaml"
    local = tmp_path / "local.yaml"
    base.write_text(BASE, encoding="utf-8")
    local.write_text(
        textwrap.dedent(
            """\
            version: 1
            timezone: UTC
            privacy:
              actions: {PHONE: block}
            labels:
              - {id: labels.legal, labels: [legal], action: deny}
            cloud:
              allow: [lan]
            apps:
              chat:
                cloud: {allow: [openai]}
            """
        ),
        encoding="utf-8",
    )
    policy = load_policy([base, local], known_targets={"openai", "lan"})
    defaults = policy.defaults
    assert policy.document.timezone == "UTC"
    assert defaults.privacy.actions == {
        "EMAIL": Action.PSEUDONYMIZE,
        "SECRET": Action.BLOCK,
        "PHONE": Action.BLOCK,
    }
    assert [r.id for r in defaults.labels] == ["labels.health", "labels.legal"]
    assert defaults.cloud.allow == ("lan",)
    assert set(policy.app_names) == {"notes", "chat"}
    assert policy.for_app("chat").cloud.allow == ("openai",)
    assert policy.sources == (base, local)


def test_defaults_when_sections_are_absent() -> None:
    """A minimal policy is valid and safe: nothing may leave the device, no budgets, no limits."""
    policy = policy_from_text("version: 1\n")
    app = policy.for_app("any")
    assert app.cloud.allow == ()
    assert app.budgets == ()
    assert app.rate_limits == ()
    assert app.privacy.enabled
    assert str(app.timezone) == "UTC"


def test_cloud_on_failure_defaults_to_local_and_merges() -> None:
    """cloud.on_failure is 'local_fallback' unless set; an app may set 'error' for itself."""
    policy = policy_from_text(
        "version: 1\ncloud: {allow: [lan]}\napps:\n  strict:\n    cloud: {on_failure: error}\n"
    )
    assert policy.defaults.cloud.on_failure == "local_fallback"
    assert policy.for_app("strict").cloud.on_failure == "error"
    assert policy.for_app("strict").cloud.allow == ("lan",)


def test_app_privacy_may_use_types_only_the_defaults_define() -> None:
    """An app's partial privacy section is validated after merging, so it may set the action
    of a custom entity type whose detector only the defaults define."""
    policy = policy_from_text(
        textwrap.dedent(
            """\
            version: 1
            privacy:
              custom:
                - {name: emp, entity_type: EMPLOYEE_ID, regex: 'EMP-\\d{6}'}
            apps:
              hr:
                privacy:
                  actions: {EMPLOYEE_ID: block}
            """
        )
    )
    assert policy.for_app("hr").privacy.action_for("EMPLOYEE_ID") is Action.BLOCK
    assert policy.defaults.privacy.action_for("EMPLOYEE_ID") is Action.REDACT
