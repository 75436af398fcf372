"""Privacy: find PII and secrets in outgoing text, apply the owner's actions, restore pseudonyms.

Public API::

    PiiScanner(config).scan(text) -> list[Finding]
    Redactor().redact(texts, findings_per_text, actions) -> RedactionResult
    PlaceholderRestorer(placeholders).feed(chunk) / .flush()
    PrivacyGuard(config).protect(texts) -> RedactionResult     # fails closed: PolicyDenied
    scan_or_fail_closed(scanner, texts) -> list[list[Finding]]  # fails closed: PolicyDenied
"""

from __future__ import annotations

from handoffd.privacy.detectors import Detector
from handoffd.privacy.findings import Finding, resolve_overlaps
from handoffd.privacy.guard import (
    FAIL_CLOSED_RULE,
    TIMEOUT_RULE,
    PrivacyGuard,
    scan_or_fail_closed,
)
from handoffd.privacy.ner import EntitySpan, NerBackend
from handoffd.privacy.redactor import RedactionResult, Redactor
from handoffd.privacy.restorer import PlaceholderRestorer
from handoffd.privacy.scanner import PiiScanner, ScanTimeout
from handoffd.schema.privacy import Action, PrivacyConfig

__all__ = [
    "FAIL_CLOSED_RULE",
    "TIMEOUT_RULE",
    "Action",
    "Detector",
    "EntitySpan",
    "Finding",
    "NerBackend",
    "PiiScanner",
    "PlaceholderRestorer",
    "PrivacyConfig",
    "PrivacyGuard",
    "RedactionResult",
    "Redactor",
    "ScanTimeout",
    "resolve_overlaps",
    "scan_or_fail_closed",
]
