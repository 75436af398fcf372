"""The scanner never raises on hostile or random text, and redaction round-trips."""

from __future__ import annotations

import itertools
import random

from handoffd.privacy import Action, PiiScanner, PrivacyConfig, PrivacyGuard

ALPHABET = "0123456789 -.:/+()@_=xXabcdefABCDEF\n\tİß<>\"'#"
SEEDS = [
    "1 " * 400,
    "1-" * 400,
    "::" * 400,
    "-----BEGIN PRIVATE KEY-----\n" * 30,
    "password=" * 100,
    "DE89 3704 0044 0532 0130 00 " * 30,
    "+" * 50 + "0" * 50,
]


def test_random_and_hostile_text_never_raises() -> None:
    """Seeded random strings over a digit/separator-heavy alphabet, and degenerate repetitions,
    scan without error; every finding lies inside the text and findings do not overlap."""
    scanner = PiiScanner(PrivacyConfig())
    rng = random.Random(1234)
    texts = [*SEEDS, *("".join(rng.choices(ALPHABET, k=rng.randint(1, 300))) for _ in range(300))]
    for text in texts:
        findings = scanner.scan(text)
        for a, b in itertools.pairwise(findings):
            assert a.end <= b.start
        assert all(0 <= f.start < f.end <= len(text) for f in findings)


def test_pseudonymize_everything_round_trips() -> None:
    """With every type pseudonymized, restoring the redacted text gives the original back."""
    config = PrivacyConfig(default_action=Action.PSEUDONYMIZE)
    guard = PrivacyGuard(config)
    rng = random.Random(99)
    parts = ["jane@example.com", "+44 20 7946 0958", "4111 1111 1111 1111", "10.0.0.1",
             "DE89370400440532013000", "AKIAIOSFODNN7EXAMPLE", "hello", "123-45-6789"]  # fmt: skip
    for _ in range(50):
        text = " ".join(rng.choices(parts, k=8))
        result = guard.protect([text])
        assert result.restorer().restore(result.texts[0]) == text
