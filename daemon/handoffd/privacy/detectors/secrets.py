"""API keys, tokens, private keys and other secrets.

Well-known formats each have their own rule id (``privacy.secret.github``, ...) and a literal
anchor (``sk-``, ``ghp_``, ``-----BEGIN``...): a pattern runs only when its anchor occurs, and
is matched only at the anchor's positions. For bearer tokens and ``password=...``-style
assignments only the value is the finding, not the keyword before it; an assignment whose value
is code or a reference (``self.password``, ``get_token()``, ``${API_KEY}``, ``{{ secret }}``)
is not a secret.

Secrets without a known format are caught by entropy (rule ``privacy.secret.entropy``): a run of
``[A-Za-z0-9+=_-]`` (``/`` and ``.`` split runs, so URLs and paths fall apart into short pieces)
counts when it is at least ``min_length`` long, switches between letters and digits at least four
times (``release-2024`` or ``utf8`` do not) or mixes 2+ digits, 2+ upper and 2+ lower case
letters with the character class changing at half its positions (random base62), is not
plain hexadecimal (git SHAs, checksums and UUIDs are everyday prompt content and are NOT
flagged: a hex-only secret must match a known format or a custom rule), and its Shannon entropy
is at least ``entropy_threshold`` bits per character.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter

from handoffd.privacy.detectors.base import TextIndex, find_all
from handoffd.privacy.findings import Finding
from handoffd.schema.privacy import SecretsConfig

_B = r"(?<![A-Za-z0-9_-])"  # not glued to a preceding token

# kind -> (anchors, pattern matched AT an anchor position, case-insensitive anchors?)
_KNOWN: dict[str, tuple[tuple[str, ...], str, bool]] = {
    "private_key": (
        ("-----BEGIN",),
        r"-----BEGIN[A-Z0-9 ]{0,40} PRIVATE KEY( BLOCK)?-----"
        r"[\s\S]*?(?:-----END[A-Z0-9 ]{0,40} PRIVATE KEY( BLOCK)?-----|\Z)",
        False,
    ),
    "jwt": (("eyJ",), _B + r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", False),
    "anthropic": (("sk-ant-",), _B + r"sk-ant-[A-Za-z0-9_-]{20,}", False),
    "openai": (("sk-",), _B + r"sk-(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}", False),
    "stripe": (("sk_", "rk_"), _B + r"[rs]k_(?:live|test)_[A-Za-z0-9]{16,}", False),
    "github": (
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        _B + r"(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})",
        False,
    ),
    "aws": (("AKIA", "ASIA", "ABIA", "ACCA"), _B + r"(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b", False),
    "slack": (("xox",), _B + r"xox[abposr]-[A-Za-z0-9-]{10,}", False),
    "google": (("AIza",), _B + r"AIza[0-9A-Za-z_-]{35}", False),
    "bearer": (("bearer",), r"(?i:bearer)[ \t]+(?P<v>[A-Za-z0-9._~+/-]{16,}=*)", True),
    "assignment": (
        ("password", "passwd", "pwd", "secret", "api_key", "api-key", "apikey", "access_token",
         "auth_token", "client_secret"),
        r"(?i:[a-z_-]+)[\"']?[ \t]*[:=][ \t]*[\"']?(?P<v>[^\s\"',;]{8,})",
        True,
    ),
}  # fmt: skip
_COMPILED = {kind: (anchors, re.compile(p), ci) for kind, (anchors, p, ci) in _KNOWN.items()}

# an assignment's value that is code or a reference, not a literal secret
_CODE_VALUE = re.compile(r"[(\[{$%<]|[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+(?:\(|\[|$)|[A-Za-z_]\w*[(\[]")
_RUN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+=_-")
_RUN = re.compile(r"[A-Za-z0-9+=_-]+")
_HEX = re.compile(r"[0-9A-Fa-f-]+")
_TRANSITION = re.compile(r"(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")
_MAX_RUN = 4096


def _is_code(m: re.Match[str]) -> bool:
    """An assignment that is code: a call, a reference, a template, or a type annotation
    (``password: str``, an unquoted word of letters only after a colon)."""
    value = m.group("v")
    if _CODE_VALUE.match(value):
        return True
    head = m.group()[: m.start("v") - m.start()]
    word = value.rstrip(")]}>")
    return ":" in head and not head.rstrip().endswith(("'", '"')) and word.isalpha()


def shannon_entropy(value: str) -> float:
    """Bits per character of ``value``'s own character distribution."""
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


class SecretDetector:
    name = "secret"

    def __init__(self, config: SecretsConfig) -> None:
        self._config = config
        self._min_length = config.min_length

    def find(self, text: str, index: TextIndex) -> list[Finding]:
        out: list[Finding] = []
        for kind, (anchors, pattern, ci) in _COMPILED.items():
            done = -1  # anchors inside this kind's previous match are skipped: linear time
            for anchor in anchors:
                if ci:
                    starts = find_all(index, anchor)
                elif anchor in text:
                    starts = _positions(text, anchor)
                else:
                    continue
                for anchor_at in starts:
                    if anchor_at < done:
                        continue
                    at = anchor_at
                    if ci:  # the keyword may be part of a longer key name: back up to its start
                        while at > 0 and (text[at - 1].isalnum() or text[at - 1] in "_-"):
                            at -= 1
                    m = pattern.match(text, at)
                    if m and kind == "assignment" and _is_code(m):
                        m = None  # password = self.password / get_token() / ${SECRET}
                    if m:
                        done = m.end()
                        group = "v" if ci else 0
                        rule = f"privacy.secret.{kind}"
                        out.append(Finding("SECRET", m.start(group), m.end(group), rule))
        if self._config.high_entropy and len(text) >= self._min_length and index.has_digits(2):
            out.extend(self._high_entropy(text, index))
        return out

    def _high_entropy(self, text: str, index: TextIndex) -> list[Finding]:
        out: list[Finding] = []
        done = 0
        for s, e in index.digit_runs:  # every candidate holds digits: visit the runs' tokens
            start = max(s, done)
            while start > done and s - start < _MAX_RUN and text[start - 1] in _RUN_CHARS:
                start -= 1
            for m in _RUN.finditer(text, start):
                if m.start() >= e:
                    break
                done = m.end()
                value = m.group()
                if len(value) >= self._min_length and self.looks_random(value):
                    out.append(Finding("SECRET", m.start(), m.end(), "privacy.secret.entropy"))
        return out

    def looks_random(self, value: str) -> bool:
        """The entropy rule of the module docstring, for one run."""
        if _HEX.fullmatch(value):
            return False
        if len(_TRANSITION.findall(value)) < 4 and not _mixed_and_jumpy(value):
            return False  # 4 letter/digit switches imply 2+ letters and 2+ digits
        return shannon_entropy(value) >= self._config.entropy_threshold


def _class_of(ch: str) -> int:
    return 0 if ch.islower() else 1 if ch.isupper() else 2 if ch.isdigit() else 3


def _mixed_and_jumpy(value: str) -> bool:
    """Random base62 with few digits: 2+ digits, 2+ upper, 2+ lower case letters, and the
    character class (lower/upper/digit/other) changing at half the positions or more
    (CamelCase words change about once per word)."""
    classes = [_class_of(c) for c in value]
    if classes.count(0) < 2 or classes.count(1) < 2 or classes.count(2) < 2:
        return False
    switches = sum(a != b for a, b in itertools.pairwise(classes))
    return switches * 2 >= len(value) - 1


def _positions(text: str, literal: str) -> list[int]:
    out: list[int] = []
    at = text.find(literal)
    while at != -1:
        out.append(at)
        at = text.find(literal, at + 1)
    return out
