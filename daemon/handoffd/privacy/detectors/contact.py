"""E-mail addresses and phone numbers.

Phones: ``phonenumbers.PhoneNumberMatcher`` is the reference, but it costs ~1.4 ms on a 2 KB text
with no digits at all and 0.25-0.7 ms per candidate and region on a small CPU, more than the
whole scan may take. So candidates are found by one precompiled regex (digit groups with the
separators people write: space - . / ( ) and an optional extension) in the digit windows of the
text, then checked against phonenumbers' own metadata (lengths, national prefix, country codes;
``is_possible_number`` on a PhoneNumber built directly, never ``phonenumbers.parse``), per
configured region for national formats and by country code for international ones (``+CC``,
``00CC``, ``011CC``). A UK ``020 ...`` number is a phone only when GB is configured. NANP
numbers must have the NXX-NXX shape. docs/benchmarks.md compares recall, precision and time
with PhoneNumberMatcher on the same sentences.

``possible`` (the default) fails safe: a number of a possible length counts even if its range is
unassigned; ``valid`` also asks phonenumbers whether the range is assigned (fewer false
positives, misses made-up or new numbers, ~0.1 ms more per candidate).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from typing import Literal

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumber

from handoffd.errors import ConfigError
from handoffd.privacy.detectors.base import TextIndex
from handoffd.privacy.findings import Finding

# found from each "@": the local part backwards, the domain forwards
_LOCAL = re.compile(r"[\w%+][\w.%+'-]{0,63}\Z")  # starts with no quote: 'a@b.c' in code
_DOMAIN = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-]|\.[A-Za-z0-9])"
)


class EmailDetector:
    name = "email"

    def find(self, text: str, index: TextIndex) -> list[Finding]:
        out: list[Finding] = []
        at = text.find("@")
        while at != -1:
            domain = _DOMAIN.match(text, at + 1)
            if domain:
                window = text[max(0, at - 64) : at]
                local = _LOCAL.search(window)
                if local:
                    start = at - len(window) + local.start()
                    out.append(Finding("EMAIL", start, domain.end(), "privacy.email"))
            at = text.find("@", at + 1)
        return out


_GROUP = r"(?:\(\s?\d{1,5}\s?\)|\d)"
_PHONE = re.compile(
    r"(?<![\w+/.,(-])(?<!\d:)(?P<plus>\+\s?)?"
    rf"(?P<body>{_GROUP}(?:[ \t]?[-./]?[ \t]?{_GROUP}){{5,}})"
    r"(?P<ext>[ \t]?(?:x|ext\.?|extension|\#)[ \t]?\d{1,6})?"
    r"(?![\w]|[.,]\d|-\w)",
    re.IGNORECASE,
)
_TRUNK_IN_PARENS = re.compile(r"\(\s?0\s?\)")
_WS = re.compile(r"\s+")
_NON_DIGIT = re.compile(r"[^0-9]+")
_MIN_NSN = 6
_IS_POSSIBLE = phonenumbers.ValidationResult.IS_POSSIBLE
_MAX_DIGITS = 17


class _Region:
    """What national-format checking needs from one region's metadata."""

    def __init__(self, code: str) -> None:
        md = PhoneMetadata.metadata_for_region(code)
        if md is None:
            raise ConfigError(
                f"phone region {code!r} is unknown to phonenumbers: use an ISO 3166 code "
                "such as US, GB, DE, FR"
            )
        self.code = code
        self.country_code: int = md.country_code or 0
        self.national_prefix: str | None = md.national_prefix
        #: national significant number lengths (a cheap filter before phonenumbers is asked)
        self.lengths = frozenset(md.general_desc.possible_length if md.general_desc else ())
        #: NANP numbers are often written without their "1"; elsewhere the prefix is written
        self.prefix_optional = md.country_code == 1
        idd = md.international_prefix or ""
        self.idds = tuple(p for p in ("00", "011") if re.fullmatch(idd, p))


class PhoneDetector:
    name = "phone"

    def __init__(
        self, regions: Iterable[str], validation: Literal["possible", "valid"] = "possible"
    ) -> None:
        self._regions = tuple(_Region(r) for r in regions)
        self._idds = tuple(sorted({p for r in self._regions for p in r.idds} | {"00"}))
        self._valid = validation == "valid"

    def find(self, text: str, index: TextIndex) -> list[Finding]:
        out: list[Finding] = []
        if not index.has_digits(7):
            return out
        for pos, endpos in index.digit_windows(8, 2):
            out.extend(self._find_in(text, pos, endpos))
        return out

    def _find_in(self, text: str, pos: int, endpos: int) -> list[Finding]:
        out: list[Finding] = []
        for m in _PHONE.finditer(text, pos, endpos):
            start = m.start("plus") if m.group("plus") else m.start("body")
            end = m.end()
            plus = bool(m.group("plus"))
            body = _TRUNK_IN_PARENS.sub("", m.group("body")) if plus else m.group("body")
            if self._is_phone(_NON_DIGIT.sub("", body), plus):
                out.append(Finding("PHONE", start, end, "privacy.phone"))
                continue
            out.extend(self._split(text, m.start("body"), m.end("body"), m.group("plus")))
        return out

    def _split(self, text: str, start: int, end: int, plus: str | None) -> list[Finding]:
        """A failed candidate may be several numbers in a row: from each whitespace-aligned
        start, report the longest window that is a phone. Windows may overlap; the scanner
        merges overlapping findings, so every digit of every phone found stays covered."""
        cuts = [start] + [w.end() for w in _WS.finditer(text, start, end)]
        if len(cuts) < 2:
            return []
        bounds = [*cuts, end]
        # all digits of the run once, and how many come before each bound: a window's digits
        # are a slice, and windows of impossible size are skipped without work
        pieces = [_NON_DIGIT.sub("", text[a:b]) for a, b in itertools.pairwise(bounds)]
        digits = "".join(pieces)
        before = [0]
        for piece in pieces:
            before.append(before[-1] + len(piece))
        out: list[Finding] = []
        for i in range(len(cuts)):
            # the farthest bound within _MAX_DIGITS, over pieces of 2+ digits after the first
            # (a grid of single digits is no phone): work stays linear in the run's length
            last = i + 1
            while (
                last + 1 < len(bounds)
                and before[last + 1] - before[i] <= _MAX_DIGITS
                and len(pieces[last]) >= 2
            ):
                last += 1
            for j in range(last, i, -1):
                if before[j] - before[i] < 7:
                    break
                if i == 0 and plus:
                    body = text[bounds[0] : bounds[j]]
                    ok = self._is_phone(_NON_DIGIT.sub("", _TRUNK_IN_PARENS.sub("", body)), True)
                    s = bounds[0] - len(plus)
                else:
                    ok = self._is_phone(digits[before[i] : before[j]], False)
                    s = bounds[i]
                if ok:
                    e = bounds[i] + len(text[bounds[i] : bounds[j]].rstrip())
                    out.append(Finding("PHONE", s, e, "privacy.phone"))
                    break
        return out

    def _is_phone(self, digits: str, plus: bool) -> bool:
        """Whether these digits (trunk "(0)" already removed after a "+") are a phone."""
        if not 7 <= len(digits) <= _MAX_DIGITS or len(set(digits)) == 1:
            return False
        if plus:
            return self._international(digits)
        for idd in self._idds:
            if digits.startswith(idd) and self._international(digits[len(idd) :]):
                return True
        return any(self._national(digits, r) for r in self._regions)

    def _international(self, digits: str) -> bool:
        for n in (1, 2, 3):
            cc = int(digits[:n]) if len(digits) > n else 0
            if cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
                return self._check(cc, digits[n:])
        return False

    def _national(self, digits: str, region: _Region) -> bool:
        prefix = region.national_prefix
        if prefix and digits.startswith(prefix):
            if region.prefix_optional and self._national_number(digits, region):
                return True  # NANP: "1..." may be the trunk prefix or not
            digits = digits[len(prefix) :]
        elif prefix and not region.prefix_optional:
            return False
        return self._national_number(digits, region)

    def _national_number(self, digits: str, region: _Region) -> bool:
        if region.lengths and len(digits) not in region.lengths:
            return False
        if region.country_code == 1 and (digits[0] in "01" or digits[3] in "01"):
            return False  # NANP: area code and exchange are NXX (N = 2-9)
        return self._check(region.country_code, digits)

    def _check(self, country_code: int, nsn: str) -> bool:
        if len(nsn) < _MIN_NSN:
            return False
        zeros = len(nsn) - len(nsn.lstrip("0"))
        number = PhoneNumber(
            country_code=country_code,
            national_number=int(nsn),
            italian_leading_zero=zeros > 0 or None,
            number_of_leading_zeros=zeros if zeros > 1 else None,
        )
        if self._valid:
            return bool(phonenumbers.is_valid_number(number))
        # IS_POSSIBLE only: "possible local only" (a 7-digit US number) matches too much
        return bool(phonenumbers.is_possible_number_with_reason(number) == _IS_POSSIBLE)
