"""Fail closed: scanning and redacting one request, where any failure means nothing is sent.

:class:`PrivacyGuard` is what the pipeline holds: ``protect(texts)`` scans every message under
the configured deadline and applies the configured actions. A detector that raises, or a scan
that runs past ``detector_timeout_ms``, becomes :class:`~handoffd.errors.PolicyDenied` with rule
id ``privacy.fail_closed`` or ``privacy.timeout``: the request must not leave the device (the
pipeline may still answer it locally). Failures are logged with error class names and sizes,
never values or exception messages (which could quote the text); a successful scan logs
nothing here (hot path): the pipeline's summary line carries ``result.counts``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from handoffd.errors import PolicyDenied
from handoffd.logsetup import get_logger
from handoffd.privacy.detectors import Detector
from handoffd.privacy.findings import Finding
from handoffd.privacy.redactor import RedactionResult, Redactor
from handoffd.privacy.scanner import PiiScanner, ScanTimeout
from handoffd.schema.privacy import PrivacyConfig

log = get_logger(__name__)

FAIL_CLOSED_RULE = "privacy.fail_closed"
TIMEOUT_RULE = "privacy.timeout"


def scan_or_fail_closed(
    scanner: PiiScanner, texts: Sequence[str], *, timeout_ms: float | None = None
) -> list[list[Finding]]:
    """Scan every text of one request; any failure raises :class:`PolicyDenied`."""
    try:
        return scanner.scan_all(texts, timeout_ms=timeout_ms)
    except ScanTimeout as exc:
        log.warning(
            "privacy.scan_timeout",
            detector=exc.detector,
            elapsed_ms=round(exc.elapsed_ms, 3),
            texts=len(texts),
            chars=sum(len(t) for t in texts),
        )
        raise PolicyDenied(
            "the privacy scan did not finish in time, so nothing was sent off the device; "
            "raise privacy.detector_timeout_ms or simplify custom detectors",
            rule_ids=(TIMEOUT_RULE,),
        ) from None
    except Exception as exc:
        log.error(
            "privacy.scan_failed",
            error=type(exc).__name__,
            texts=len(texts),
            chars=sum(len(t) for t in texts),
        )
        raise PolicyDenied(
            "the privacy scan failed, so nothing was sent off the device; the daemon log has "
            "the error class",
            rule_ids=(FAIL_CLOSED_RULE,),
        ) from None


class PrivacyGuard:
    """Scanner + redactor for one privacy configuration (build once per policy load)."""

    def __init__(self, config: PrivacyConfig, *, extra_detectors: Sequence[Detector] = ()) -> None:
        self.config = config
        self.scanner = PiiScanner(config, extra_detectors=extra_detectors)
        self._redactor = Redactor()
        self._actions = config.effective_actions()

    @property
    def on_block(self) -> Literal["local", "deny"]:
        return self.config.on_block

    def protect(self, texts: Sequence[str]) -> RedactionResult:
        """The texts as they may leave the device. Fails closed (:class:`PolicyDenied`).

        A ``block`` finding does not raise: ``result.blocked`` is true and the caller applies
        ``on_block`` (answer locally, or raise with ``result.blocked_rule_ids``).
        """
        findings = scan_or_fail_closed(self.scanner, texts)
        try:
            result = self._redactor.redact(
                texts, findings, self._actions, default=self.config.default_action
            )
        except Exception as exc:
            log.error("privacy.redact_failed", error=type(exc).__name__, texts=len(texts))
            raise PolicyDenied(
                "redaction failed, so nothing was sent off the device",
                rule_ids=(FAIL_CLOSED_RULE,),
            ) from None
        return result
