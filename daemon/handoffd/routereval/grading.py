"""Graders: is an answer right, given the item's reference?

- ``exact``: the answer, normalised (case, accents, surrounding punctuation and whitespace),
  equals the reference or an alias;
- ``contains`` / ``contains_cs``: the reference or an alias appears in the answer as whole
  words (``8`` does not match ``18``), ignoring case (``contains``) or not (``contains_cs``);
  accents and runs of whitespace are ignored in both;
- ``numeric``: the answer's final number equals the reference within ``tolerance`` (absolute).
  The final number is the one after the last ``=`` or "answer is" when there is one, else the
  last number of the answer's first paragraph; thousands separators are accepted (``1,234``).
"""

from __future__ import annotations

import math
import re
import unicodedata

from handoffd.routereval.dataset import EvalItem

_NUMBER = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?")
_FINAL_MARK = re.compile(r"(?:=|\banswer\s*(?:is|:)|\bequals\b|\bresult\s*(?:is|:))", re.I)


def _fold(text: str, *, case_sensitive: bool) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    plain = " ".join(plain.split())
    return plain if case_sensitive else plain.casefold()


def _contains(answer: str, needle: str, *, case_sensitive: bool) -> bool:
    hay = _fold(answer, case_sensitive=case_sensitive)
    want = _fold(needle, case_sensitive=case_sensitive)
    if not want:
        return False
    left = r"(?<!\w)" if want[0].isalnum() else ""
    right = r"(?!\w)" if want[-1].isalnum() else ""
    return re.search(left + re.escape(want) + right, hay) is not None


def _parse_number(text: str) -> float:
    return float(text.replace(",", ""))


def final_number(answer: str) -> float | None:
    """The number an answer commits to (see the module docstring), or None."""
    paragraph = answer.strip().split("\n\n", 1)[0]
    marks = list(_FINAL_MARK.finditer(paragraph))
    if marks:
        after = _NUMBER.search(paragraph, marks[-1].end())
        if after is not None:
            return _parse_number(after.group(0))
    numbers = _NUMBER.findall(paragraph)
    if numbers:
        return _parse_number(numbers[-1])
    numbers = _NUMBER.findall(answer)
    return _parse_number(numbers[-1]) if numbers else None


def grade(item: EvalItem, answer: str) -> bool:
    """Whether ``answer`` is right for ``item``."""
    wanted = (item.reference, *item.aliases)
    if item.grader == "numeric":
        got = final_number(answer)
        if got is None:
            return False
        for ref in wanted:
            try:
                target = _parse_number(ref)
            except ValueError:
                continue
            if math.isclose(got, target, rel_tol=0.0, abs_tol=max(item.tolerance, 1e-9)):
                return True
        return False
    if item.grader == "exact":
        strip = " \t\n.!?,;:\"'`"
        got_text = _fold(answer.strip(strip), case_sensitive=False)
        return any(got_text == _fold(ref.strip(strip), case_sensitive=False) for ref in wanted)
    case_sensitive = item.grader == "contains_cs"
    return any(_contains(answer, ref, case_sensitive=case_sensitive) for ref in wanted)
