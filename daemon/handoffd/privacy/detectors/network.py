"""IPv4 and IPv6 addresses (validated with :mod:`ipaddress`) and MAC addresses.

IPv4: four dot-separated numbers that ``ipaddress`` accepts (so no octet over 255 and no leading
zeros); a version string such as ``1.2.3.4`` is an address too: it cannot be told apart.
IPv6: colon-hexadecimal runs that ``ipaddress`` accepts (``::1``, ``fe80::1``, embedded IPv4);
times like ``12:30:45`` are not. MAC: six hex pairs separated by one kind of ``:`` or ``-``,
or Cisco's ``xxxx.xxxx.xxxx``. IPv6 and MAC candidates are found from the positions of their
separators (``str.find``), not by scanning the whole text with a pattern.
"""

from __future__ import annotations

import ipaddress
import re

from handoffd.privacy.detectors.base import TextIndex
from handoffd.privacy.findings import Finding

_IPV4 = re.compile(r"\d(?<![\w.]\d)\d{0,2}\.(?:\d{1,3}\.){2}\d{1,3}(?![\w]|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?"
    r"(?![\w:]|\.\d)"
)
_MAC_SEP = re.compile(
    r"(?<![\w:-])[0-9A-Fa-f]{2}([:-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}(?![\w:-])"
)
_MAC_DOT = re.compile(r"(?<![\w.])[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}(?![\w]|\.\w)")


def _positions(text: str, char: str) -> list[int]:
    out: list[int] = []
    at = text.find(char)
    while at != -1:
        out.append(at)
        at = text.find(char, at + 1)
    return out


def _clusters(positions: list[int], gap: int, at_least: int) -> list[tuple[int, int]]:
    """Runs of positions at most ``gap`` apart with at least ``at_least`` members."""
    out: list[tuple[int, int]] = []
    start = 0
    for i in range(1, len(positions) + 1):
        if i == len(positions) or positions[i] - positions[i - 1] > gap:
            if i - start >= at_least:
                out.append((positions[start], positions[i - 1]))
            start = i
    return out


class IpDetector:
    name = "ip_address"

    def find(self, text: str, index: TextIndex) -> list[Finding]:
        out: list[Finding] = []
        if "." in text and index.has_digits(4):
            for pos, endpos in index.digit_windows(1, 1):
                for m in _IPV4.finditer(text, pos, endpos):
                    try:
                        ipaddress.IPv4Address(m.group())
                    except ValueError:
                        continue
                    out.append(Finding("IP_ADDRESS", m.start(), m.end(), "privacy.ip_address"))
        if text.count(":") >= 2:
            # every IPv6 address has 2+ colons, each within 5 characters of the next
            for first, last in _clusters(_positions(text, ":"), 5, 2):
                pos, endpos = max(0, first - 5), min(len(text), last + 17)
                for m in _IPV6.finditer(text, pos, endpos):
                    found = self._v6(m)
                    if found:
                        out.append(found)
        return out

    @staticmethod
    def _v6(m: re.Match[str]) -> Finding | None:
        value = m.group()
        if not any(c.isalnum() for c in value):
            return None
        try:
            ipaddress.IPv6Address(value)
        except ValueError:
            return None
        return Finding("IP_ADDRESS", m.start(), m.end(), "privacy.ip_address")


# a literal-first pattern is searched fast: each form needs one of these somewhere
_MAC_HINTS = {":": re.compile(r":[0-9A-Fa-f]{2}:"), "-": re.compile(r"-[0-9A-Fa-f]{2}-"),
              ".": re.compile(r"\.[0-9A-Fa-f]{4}\.")}  # fmt: skip


class MacDetector:
    name = "mac_address"

    def find(self, text: str, index: TextIndex) -> list[Finding]:
        out: list[Finding] = []
        for sep, pattern, gap, seps in ((":", _MAC_SEP, 3, 5), ("-", _MAC_SEP, 3, 5),
                                        (".", _MAC_DOT, 5, 2)):  # fmt: skip
            if text.count(sep) < seps or not _MAC_HINTS[sep].search(text):
                continue
            for first, last in _clusters(_positions(text, sep), gap, seps):
                pos, endpos = max(0, first - 5), min(len(text), last + 6)
                out.extend(
                    Finding("MAC_ADDRESS", m.start(), m.end(), "privacy.mac_address")
                    for m in pattern.finditer(text, pos, endpos)
                )
        return out
