"""Privacy detection recall/precision on a labelled offline set, and scan latency on 2 KB prompts.

    python bench/privacy_recall.py [--sentences 1600] [--seed 7] [--no-write]

Data: sentences from templates filled by ``faker`` (en_US, en_GB, de_DE, fr_FR, nl_NL, es_ES,
it_IT), each value labelled with its span: e-mails, cards (every faker card type, bare, spaced or
dashed), IBANs (bare or in groups of 4), US SSNs, IPv4/IPv6, MACs, phones (faker's national
formats per locale, plus the same numbers in international format), secrets (known token formats
and random high-entropy keys), and distractor sentences (dates, times, prices, versions, order
numbers, ISBNs, git SHAs, UUIDs, URLs, file paths) that hold no label at all.

Metrics, per entity type:
- recall: a label counts as found when findings OF ITS TYPE cover every letter and digit of it;
- covered: the same with findings of ANY type (what matters for leaks: the value left redacted);
- precision: findings of that type that overlap a label of that type, over all findings of it.

Baseline for phones: ``phonenumbers.PhoneNumberMatcher`` over the same regions (leniency
POSSIBLE, results merged), on the same sentences, with its own latency.

Latency: ``PiiScanner.scan`` and the whole ``PrivacyGuard.protect`` (scan + redact) on 2 KB
prompts (faker prose with six PII values in it, 50 different prompts, plus one with no PII),
after a warm-up, ``time.perf_counter_ns`` per call, p50/p99 over all calls.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import platform
import random
import re
import string
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import phonenumbers
from benchdoc import DOC, write_section
from faker import Faker
from handoffd.errors import PolicyDenied
from handoffd.privacy import Finding, PiiScanner, PrivacyConfig, PrivacyGuard
from handoffd.privacy.detectors import TextIndex
from handoffd.privacy.detectors.contact import PhoneDetector

ROOT = Path(__file__).resolve().parent.parent
NAME = "privacy_recall"
LOCALES = ["en_US", "en_GB", "de_DE", "fr_FR", "nl_NL", "es_ES", "it_IT"]
PHONE_LOCALES = {"en_US": "US", "en_GB": "GB", "de_DE": "DE", "fr_FR": "FR"}
REGIONS = ("US", "GB", "DE", "FR")
TYPES = [
    "EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "IP_ADDRESS", "MAC_ADDRESS", "SECRET",
]  # fmt: skip
TARGETS = {"EMAIL": 1.0, "CREDIT_CARD": 1.0, "IBAN": 1.0, "US_SSN": 1.0, "IP_ADDRESS": 1.0,
           "PHONE": 0.95}  # fmt: skip


@dataclass
class Sample:
    text: str
    labels: list[tuple[str, int, int]] = field(default_factory=list)


class Builder:
    """Builds one sentence from pieces, recording label spans."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.labels: list[tuple[str, int, int]] = []
        self.size = 0

    def add(self, text: str, entity: str | None = None) -> Builder:
        if entity:
            self.labels.append((entity, self.size, self.size + len(text)))
        self.parts.append(text)
        self.size += len(text)
        return self

    def done(self) -> Sample:
        return Sample("".join(self.parts), self.labels)


def _rand(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


ALNUM = string.ascii_letters + string.digits


def secret_value(rng: random.Random) -> str:
    kind = rng.randrange(10)
    if kind == 0:
        return "sk-proj-" + _rand(rng, ALNUM + "_-", 48)
    if kind == 1:
        return "ghp_" + _rand(rng, ALNUM, 36)
    if kind == 2:
        return "AKIA" + _rand(rng, string.ascii_uppercase + string.digits, 16)
    if kind == 3:
        return "xoxb-" + _rand(rng, string.digits, 12) + "-" + _rand(rng, ALNUM, 24)
    if kind == 4:
        return "AIza" + _rand(rng, ALNUM + "_-", 35)
    if kind == 5:
        head = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
        return f"{head}.eyJ{_rand(rng, ALNUM, 40)}.{_rand(rng, ALNUM + '_-', 43)}"
    if kind == 6:
        return "sk_live_" + _rand(rng, ALNUM, 24)
    if kind == 7:
        return "github_pat_" + _rand(rng, ALNUM + "_", 60)
    return _rand(rng, ALNUM, rng.choice([24, 32, 40]))  # unknown format: entropy rule


def card_value(fake: Faker, rng: random.Random) -> str:
    number = fake.credit_card_number()
    style = rng.randrange(3)
    if style == 0:
        return number
    sep = " " if style == 1 else "-"
    if len(number) == 15:  # Amex style 4-6-5
        return sep.join([number[:4], number[4:10], number[10:]])
    return sep.join(number[i : i + 4] for i in range(0, len(number), 4))


def iban_value(fake: Faker, rng: random.Random) -> str:
    iban = fake.iban()
    if rng.random() < 0.5:
        return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    return iban


def phone_values(fake: Faker, locale: str) -> list[str]:
    national = fake.phone_number()
    out = [national]
    try:
        parsed = phonenumbers.parse(national, PHONE_LOCALES[locale])
        if phonenumbers.is_possible_number(parsed):
            fmt = phonenumbers.PhoneNumberFormat.INTERNATIONAL
            out.append(phonenumbers.format_number(parsed, fmt))
    except phonenumbers.NumberParseException:
        pass
    return out


TEMPLATES: dict[str, list[tuple[str, str]]] = {
    "EMAIL": [("Please reply to ", "."), ("My address is ", " if you need it."),
              ("cc: ", ", thanks")],
    "PHONE": [("Call me at ", " tomorrow."), ("Phone: ", ""), ("You can reach ", " after 5pm."),
              ("Rufen Sie ", " an."), ("Mon numéro est le ", ".")],
    "CREDIT_CARD": [("My card number is ", "."), ("Charge ", " please"),
                    ("Card: ", " exp 09/27")],
    "IBAN": [("Transfer it to ", " by Friday."), ("IBAN: ", ""), ("Account ", " (savings).")],
    "US_SSN": [("My SSN is ", "."), ("SSN: ", " on the form"), ("social security number ", "")],
    "IP_ADDRESS": [("The server at ", " is down."), ("ssh into ", " and restart"),
                   ("Blocked IP ", " after 3 attempts.")],
    "MAC_ADDRESS": [("Device MAC ", " joined."), ("Whitelist ", " on the router.")],
    "SECRET": [("Use the key ", " for the API."), ("token=", ""), ("export API_KEY=", "\n")],
}  # fmt: skip


def value_for(entity: str, fake: Faker, rng: random.Random, locale: str) -> list[str]:
    if entity == "EMAIL":
        return [rng.choice([fake.email, fake.free_email, fake.company_email])()]
    if entity == "PHONE":
        return phone_values(fake, locale)
    if entity == "CREDIT_CARD":
        return [card_value(fake, rng)]
    if entity == "IBAN":
        return [iban_value(fake, rng)]
    if entity == "US_SSN":
        return [_US.ssn()]
    if entity == "IP_ADDRESS":
        return [fake.ipv4() if rng.random() < 0.6 else fake.ipv6()]
    if entity == "MAC_ADDRESS":
        return [fake.mac_address()]
    return [secret_value(rng)]


def distractor(fake: Faker, rng: random.Random) -> str:
    def clock() -> str:
        return f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"

    options: list[Callable[[], str]] = [
        lambda: f"Meeting on {fake.date()} at {rng.randint(0, 23)}:{rng.randint(10, 59)}.",
        lambda: f"It costs ${rng.randint(1, 99999)}.{rng.randint(0, 99):02d} incl. tax.",
        lambda: f"Upgrade to version {rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}.",
        lambda: f"Order #{rng.randint(10**5, 10**9)} shipped in {rng.randint(2, 9)} boxes.",
        lambda: f"See commit {fake.sha1()} for the fix.",
        lambda: f"The request id was {fake.uuid4()}.",
        lambda: f"Docs: {fake.url()}{fake.uri_path()} and {fake.file_path(depth=3)}",
        lambda: f"ISBN {fake.isbn13()} is out of print.",
        lambda: f"Checksum md5 {fake.md5()}.",
        lambda: f"{fake.sentence(nb_words=12)} {fake.sentence(nb_words=8)}",
        lambda: f"We sold {rng.randint(100, 999)} {rng.randint(100, 999)} units in {rng.randint(1990, 2030)}.",  # noqa: E501
        lambda: f"Call the front desk on extension {rng.randint(100, 9999)}.",
        lambda: f"Postcode {fake.postcode()}, {fake.street_name()}.",
        # harder look-alikes
        lambda: f"Population {rng.randint(1, 99)} {rng.randint(100, 999)} {rng.randint(100, 999)}",
        lambda: f"Logged at {fake.date()}T{clock()}.{rng.randint(0, 999999):06d} on localhost:80",
        lambda: f"Invoice INV-{rng.randint(2000, 2030)}-{rng.randint(0, 999999):06d} is due.",
        lambda: f"Coordinates {fake.latitude()}, {fake.longitude()}.",
        lambda: f"Colour #{fake.hex_color()[1:]} and build {fake.bothify('??##??##??##??##??')}.",
        lambda: f"Tracking 1Z{fake.bothify('###???########').upper()} arrives soon.",
        lambda: "Took {:02d}:{:02d}:{:02d}.{:03d}.".format(*(rng.randint(0, 59) for _ in "hms"),
                                                         rng.randint(0, 999)),
    ]  # fmt: skip
    return rng.choice(options)()


_US = Faker("en_US")


def make_dataset(n: int, seed: int) -> list[Sample]:
    rng = random.Random(seed)
    _US.seed_instance(seed - 1)
    fakers = {loc: Faker(loc) for loc in LOCALES}
    for i, f in enumerate(fakers.values()):
        f.seed_instance(seed + i)
    samples: list[Sample] = []
    while len(samples) < n:
        locale = rng.choice(LOCALES)
        fake = fakers[locale]
        if rng.random() < 0.15:
            samples.append(Builder().add(distractor(fake, rng)).done())
            continue
        entity = rng.choice(TYPES)
        if entity == "PHONE" and locale not in PHONE_LOCALES:
            locale = rng.choice(list(PHONE_LOCALES))
            fake = fakers[locale]
        for value in value_for(entity, fake, rng, locale):
            before, after = rng.choice(TEMPLATES[entity])
            b = Builder()
            if rng.random() < 0.3:
                b.add(distractor(fake, rng) + " ")
            samples.append(b.add(before).add(value, entity).add(after).done())
    return samples[:n]


_ALNUM = re.compile(r"[A-Za-z0-9]")


def covered(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    chars = _ALNUM.finditer(text, start, end)
    return all(any(s <= m.start() < e for s, e in spans) for m in chars)


def evaluate(
    samples: list[Sample], finder: Callable[[str], list[Finding]]
) -> dict[str, dict[str, float]]:
    stats: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for s in samples:
        findings = finder(s.text)
        by_type: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for f in findings:
            by_type[f.entity_type].append((f.start, f.end))
        every = [(f.start, f.end) for f in findings]
        for entity, start, end in s.labels:
            st = stats[entity]
            st["labels"] += 1
            st["found"] += covered(s.text, start, end, by_type[entity])
            st["covered"] += covered(s.text, start, end, every)
        for f in findings:
            st = stats[f.entity_type]
            st["findings"] += 1
            st["tp"] += any(
                e == f.entity_type and f.start < le and ls < f.end for e, ls, le in s.labels
            )
    return stats


def phone_matcher(leniency: int) -> Callable[[str], list[Finding]]:
    def find(text: str) -> list[Finding]:
        spans: set[tuple[int, int]] = set()
        for region in REGIONS:
            for m in phonenumbers.PhoneNumberMatcher(text, region, leniency=leniency):
                spans.add((m.start, m.end))
        return [Finding("PHONE", s, e, "baseline") for s, e in sorted(spans)]

    return find


def timed_eval(
    samples: list[Sample], finder: Callable[[str], list[Finding]]
) -> tuple[dict[str, float], float]:
    """PHONE stats of ``finder`` and its mean time per sentence in ms."""
    t0 = time.perf_counter()
    for s in samples:
        finder(s.text)
    ms = (time.perf_counter() - t0) * 1000 / len(samples)
    return evaluate(samples, finder)["PHONE"], ms


def prompt_2k(fake: Faker, rng: random.Random, with_pii: bool) -> str:
    pii = [
        f"Please email me at {fake.email()}",
        f"or call {fake.phone_number()}",
        f"My card {card_value(fake, rng)} was charged twice",
        f"refund to IBAN {fake.iban()}",
        f"the VPN at {fake.ipv4()} rejects me",
        f"and the key {secret_value(rng)} stopped working",
    ]
    parts: list[str] = []
    while sum(len(p) + 1 for p in parts) < 2048:
        parts.append(fake.paragraph(nb_sentences=3))
        if with_pii and pii:
            parts.append(pii.pop(0) + ".")
    return " ".join(parts)[:2048]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency(
    fn: Callable[[str], object], prompts: list[str], rounds: int
) -> tuple[float, float, float, float, float]:
    """Wall p50/p90/p99 and thread-CPU p50/p99 in ms. CPU time leaves out the time the thread
    waited for a core, which is what other work on a shared machine adds to wall p99."""
    for p in prompts:  # warm-up
        fn(p)
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(rounds):
        for p in prompts:
            c0 = time.thread_time_ns()
            t0 = time.perf_counter_ns()
            fn(p)
            wall.append((time.perf_counter_ns() - t0) / 1e6)
            cpu.append((time.thread_time_ns() - c0) / 1e6)
    return (
        percentile(wall, 0.50),
        percentile(wall, 0.90),
        percentile(wall, 0.99),
        percentile(cpu, 0.50),
        percentile(cpu, 0.99),
    )


CODE_PACKAGES = ("pydantic", "structlog", "click", "rich", "yaml", "grpc", "jinja2", "aiosqlite")


def code_corpus_findings(scanner: PiiScanner) -> tuple[int, int, Counter[str]]:
    """What the scanner flags in installed third-party Python source (files, bytes, by rule)."""
    counts: Counter[str] = Counter()
    files = size = 0
    for name in CODE_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            continue
        for root in spec.submodule_search_locations:
            for path in sorted(Path(root).rglob("*.py")):
                text = path.read_text(encoding="utf-8", errors="replace")
                files += 1
                size += len(text)
                counts.update(f.rule_id for f in scanner.scan(text))
    return files, size, counts


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=1600)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    config = PrivacyConfig(phone_regions=REGIONS)
    scanner = PiiScanner(config)
    guard = PrivacyGuard(config)
    samples = make_dataset(args.sentences, args.seed)
    stats = evaluate(samples, scanner.scan)
    phone_detector = PhoneDetector(REGIONS)
    phone_rows = [
        ("handoffd PhoneDetector (regex candidates + phonenumbers metadata)",
         *timed_eval(samples, lambda t: phone_detector.find(t, TextIndex(t)))),
        (f"baseline: PhoneNumberMatcher x {len(REGIONS)} regions, POSSIBLE",
         *timed_eval(samples, phone_matcher(phonenumbers.Leniency.POSSIBLE))),
        (f"baseline: PhoneNumberMatcher x {len(REGIONS)} regions, VALID",
         *timed_eval(samples, phone_matcher(phonenumbers.Leniency.VALID))),
    ]  # fmt: skip
    load_before = os.getloadavg()[0]

    rng = random.Random(args.seed)
    fake = Faker(LOCALES)
    fake.seed_instance(args.seed)
    prompts = [prompt_2k(fake, rng, True) for _ in range(50)]
    plain = [prompt_2k(fake, rng, False)]
    scan_lat = latency(scanner.scan, prompts, args.rounds)
    timeouts = 0

    def protect(prompt: str) -> None:
        nonlocal timeouts
        try:
            guard.protect([prompt])
        except PolicyDenied:
            timeouts += 1

    guard_lat = latency(protect, prompts, args.rounds)
    plain_lat = latency(scanner.scan, plain, args.rounds * 50)
    load_after = os.getloadavg()[0]

    labelled = sum(len(s.labels) for s in samples)
    lines = [
        "## Privacy detection (`bench/privacy_recall.py`)",
        "",
        f"{dt.date.today().isoformat()}, {cpu_model()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, phonenumbers {phonenumbers.__version__}. "
        f"{len(samples)} faker sentences ({', '.join(LOCALES)}; seed {args.seed}), "
        f"{labelled} labelled values; default config, phone regions {', '.join(REGIONS)}. "
        "recall = findings of the label's type cover every letter/digit of it; covered = "
        "findings of any type do (nothing of the value leaves); precision = findings of the "
        "type that overlap a label of that type.",
        "",
        "| type | labels | recall | covered | precision | findings | target |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for entity in TYPES:
        st = stats[entity]
        n = st["labels"] or 1
        prec = st["tp"] / st["findings"] if st["findings"] else 1.0
        target = f"{TARGETS[entity]:.2f}" if entity in TARGETS else ""
        lines.append(
            f"| {entity} | {int(st['labels'])} | {st['found'] / n:.3f} | {st['covered'] / n:.3f} "
            f"| {prec:.3f} | {int(st['findings'])} | {target} |"
        )
    lines += [
        "",
        "Phones against the baselines (same sentences, phone detection alone; a baseline "
        "finding overlapping a non-phone label is a false positive; ms = mean per sentence):",
        "",
        "| phone detector | recall | precision | ms/sentence |",
        "|---|---:|---:|---:|",
    ]
    for label, st, ms in phone_rows:
        prec = st["tp"] / st["findings"] if st["findings"] else 1.0
        lines.append(
            f"| {label} | {st['found'] / (st['labels'] or 1):.3f} | {prec:.3f} | {ms:.3f} |"
        )
    lines += [
        "",
        f"Latency on 2 KB prompts ({len(prompts)} prompts with 6 PII values each, "
        f"{args.rounds} rounds; wall = perf_counter_ns, CPU = thread_time_ns per call; 1-minute "
        f"load average {load_before:.1f} before, {load_after:.1f} after, on {os.cpu_count()} "
        "cores: waiting for a core on a busy machine shows up in wall p90/p99, not in CPU):",
        "",
        "| call | wall p50 ms | wall p90 ms | wall p99 ms | CPU p50 ms | CPU p99 ms |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            "| {} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.3f} |".format(label, *lat)
            for label, lat in (
                ("`PiiScanner.scan` (all built-in detectors)", scan_lat),
                ("`PrivacyGuard.protect` (scan + redact)", guard_lat),
                ("`PiiScanner.scan`, 2 KB prose, no PII", plain_lat),
            )
        ),
        "",
        f"`PrivacyGuard.protect` failed closed (scan past detector_timeout_ms = "
        f"{config.detector_timeout_ms:g} ms) on {timeouts} of {len(prompts) * (args.rounds + 1)} "
        "calls.",
    ]
    files, size, code_counts = code_corpus_findings(scanner)
    lines += [
        "",
        f"What the scanner flags in {files} files ({size / 1e6:.1f} MB) of installed third-party "
        f"Python source ({', '.join(CODE_PACKAGES)}), a stand-in for code pasted into prompts "
        "(example addresses and IPs in docstrings are true finds of their type; the rest are "
        "false positives or literal example passwords): "
        + (", ".join(f"{rule} {n}" for rule, n in code_counts.most_common()) or "nothing")
        + ".",
    ]
    misses = [
        (e, s.text[a:b])
        for s in samples
        for e, a, b in s.labels
        if not covered(s.text, a, b, [(f.start, f.end) for f in scanner.scan(s.text)
                                       if f.entity_type == e])
    ]  # fmt: skip
    section = "\n".join(lines) + "\n"
    print(section)
    if misses:
        print(f"{len(misses)} missed labels (type, value), first 25:", file=sys.stderr)
        for m in misses[:25]:
            print("  ", m, file=sys.stderr)
    if not args.no_write:
        write_section(NAME, section)
        print(f"wrote section {NAME} to {DOC.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
