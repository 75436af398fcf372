"""Writes the shipped router eval set, deterministically (fixed seed).

``python -m handoffd.routereval.datagen [OUT.jsonl]`` regenerates
``handoffd/routereval/data/router_eval_v1.jsonl``; a test checks the shipped file matches.

Categories (358 items): well-known facts (60), obscure facts (50), arithmetic of growing size
(one- to three-digit sums and products, 128), multi-step word problems (50), code questions (40)
and long-context questions (30: a fact buried in 250 to 1,000 words of similar notes). Each
category is split in half into ``tune`` and ``test`` (stratified, seeded shuffle).
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from pathlib import Path

from handoffd.domain import Message, Role
from handoffd.routereval.dataset import SHIPPED_DATASET, EvalItem, GraderName, dump_items
from handoffd.routereval.questions import CODE, FACTS_KNOWN, FACTS_OBSCURE, Question

SEED = 20261126

NAMES = (
    "Ana",
    "Ben",
    "Chloe",
    "Dev",
    "Elif",
    "Femi",
    "Grace",
    "Hugo",
    "Ines",
    "Jon",
    "Kira",
    "Liam",
    "Maya",
    "Noah",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sam",
    "Tara",
)
ARITH_PHRASES = (
    "What is {a} {op} {b}?",
    "Calculate {a} {op} {b}.",
    "Compute {a} {op} {b}. Answer with just the number.",
)
ANSWER_AS_NUMBER = " Give the final answer as a number."


def _user(text: str) -> tuple[Message, ...]:
    return (Message(Role.USER, text),)


def _questions(category: str, questions: tuple[Question, ...]) -> list[EvalItem]:
    items = []
    for n, (text, grader, reference, aliases) in enumerate(questions):
        items.append(_new(category, n, text, _grader(grader), reference, aliases))
    return items


def _grader(name: str) -> GraderName:
    if name == "contains":
        return "contains"
    if name == "contains_cs":
        return "contains_cs"
    if name == "exact":
        return "exact"
    return "numeric"


def _new(
    category: str,
    n: int,
    text: str,
    grader: GraderName,
    reference: str,
    aliases: tuple[str, ...] = (),
) -> EvalItem:
    return EvalItem(
        id=f"{category}-{n:03d}",
        category=category,
        split="test",
        messages=_user(text),
        grader=grader,
        reference=reference,
        aliases=aliases,
    )


def _arithmetic(rng: random.Random) -> list[EvalItem]:
    specs: tuple[tuple[str, int, int, str, int], ...] = (
        ("arith_add_1d", 1, 9, "+", 24),
        ("arith_add_2d", 10, 99, "+", 24),
        ("arith_add_3d", 100, 999, "+", 20),
        ("arith_mul_1d", 2, 9, "*", 20),
        ("arith_mul_2d", 11, 99, "*", 20),
        ("arith_mul_3d", 101, 999, "*", 20),
    )
    items = []
    for category, low, high, op, count in specs:
        for n in range(count):
            a, b = rng.randint(low, high), rng.randint(low, high)
            shown = op if op == "+" else rng.choice(("*", "times", "\u00d7"))
            text = rng.choice(ARITH_PHRASES).format(a=a, op=shown, b=b)
            value = a + b if op == "+" else a * b
            items.append(_new(category, n, text, "numeric", str(value)))
    return items


def _word_problems(rng: random.Random) -> list[EvalItem]:
    r = rng.randint

    def apples() -> tuple[str, int]:
        a, b, c = r(3, 20), r(2, 6), r(3, 12)
        return (
            f"{{n}} has {a} apples. {{p}} buys {b} bags with {c} apples in each bag. "
            f"How many apples does {{n}} have now?",
            a + b * c,
        )

    def change() -> tuple[str, int]:
        price, count = r(2, 9), r(2, 8)
        bill = 50 if price * count < 50 else 100
        return (
            f"Pens cost ${price} each. {{n}} buys {count} pens and pays with a ${bill} "
            f"bill. How many dollars of change does {{n}} get?",
            bill - price * count,
        )

    def train() -> tuple[str, int]:
        s1, h1, s2, h2 = r(40, 90), r(2, 5), r(30, 80), r(1, 4)
        return (
            f"A train travels at {s1} km per hour for {h1} hours, then at {s2} km per hour "
            f"for {h2} hours. How many kilometres does it travel in total?",
            s1 * h1 + s2 * h2,
        )

    def pages() -> tuple[str, int]:
        p, d, extra = r(8, 30), r(3, 9), r(5, 40)
        return (
            f"{{n}} reads {p} pages every day for {d} days and then {extra} more pages on "
            f"the last evening. How many pages does {{n}} read in total?",
            p * d + extra,
        )

    def chairs() -> tuple[str, int]:
        rows, per = r(5, 15), r(6, 14)
        taken = r(5, rows * per - 5)
        return (
            f"A hall has {rows} rows of chairs with {per} chairs in each row. {taken} "
            f"chairs are taken. How many chairs are free?",
            rows * per - taken,
        )

    def cookies() -> tuple[str, int]:
        batches, per = r(3, 8), r(12, 30)
        sold, given = r(10, batches * per // 2), r(2, 10)
        return (
            f"A baker makes {batches} batches of {per} cookies. She sells {sold} cookies and "
            f"gives away {given}. How many cookies are left?",
            batches * per - sold - given,
        )

    def wages() -> tuple[str, int]:
        wage, hours, weeks = r(9, 25), r(10, 40), r(2, 6)
        return (
            f"{{n}} earns ${wage} per hour and works {hours} hours each week. How many "
            f"dollars does {{n}} earn in {weeks} weeks?",
            wage * hours * weeks,
        )

    def money() -> tuple[str, int]:
        start, lunch = 2 * r(20, 80), r(3, 15)
        return (
            f"{{n}} had ${start}. {{p}} spent half of it on a book and then ${lunch} on "
            f"lunch. How many dollars are left?",
            start // 2 - lunch,
        )

    def legs() -> tuple[str, int]:
        cows, hens = r(2, 25), r(3, 40)
        return (
            f"A farm has {cows} cows and {hens} chickens. How many legs do these animals "
            f"have in total?",
            4 * cows + 2 * hens,
        )

    def pencils() -> tuple[str, int]:
        girls, boys, each = r(8, 20), r(8, 20), r(2, 6)
        return (
            f"A class has {girls} girls and {boys} boys. Each student gets {each} pencils. "
            f"How many pencils are handed out?",
            (girls + boys) * each,
        )

    def runs() -> tuple[str, int]:
        km, days, sat = r(3, 12), r(3, 5), r(10, 25)
        return (
            f"{{n}} runs {km} km on each of {days} weekdays and {sat} km on Saturday. How "
            f"many kilometres does {{n}} run that week?",
            km * days + sat,
        )

    def boxes() -> tuple[str, int]:
        per, count = r(6, 12), r(4, 15)
        return (
            f"A box holds {per} eggs. A farmer collects {per * count} eggs. How many boxes "
            f"does the farmer fill?",
            count,
        )

    templates: tuple[Callable[[], tuple[str, int]], ...] = (
        apples,
        change,
        train,
        pages,
        chairs,
        cookies,
        wages,
        money,
        legs,
        pencils,
        runs,
        boxes,
    )
    items = []
    for n in range(50):
        text, value = templates[n % len(templates)]()
        name = rng.choice(NAMES)
        pronoun = rng.choice(("She", "He"))
        text = text.replace("{n}", name).replace("{p}", pronoun)
        items.append(_new("word_problem", n, text + ANSWER_AS_NUMBER, "numeric", str(value)))
    return items


CROPS = (
    "tomatoes",
    "carrots",
    "beans",
    "onions",
    "potatoes",
    "lettuce",
    "peppers",
    "squash",
    "garlic",
    "beets",
    "peas",
    "radishes",
    "cabbage",
    "leeks",
    "spinach",
    "kale",
)
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
FILLER = (
    "The weather was mild and the soil was still damp from the rain.",
    "Volunteers met at the tool shed before starting work.",
    "Someone fixed the gate latch, which had been loose for weeks.",
    "The compost bins were turned and the paths were swept.",
    "Birds kept landing on the fence near the water barrels.",
    "A school group visited in the afternoon and asked many questions.",
)


def _long_context(rng: random.Random) -> list[EvalItem]:
    items = []
    for n in range(30):
        words_target = (250, 550, 1000)[n % 3]
        people = rng.sample(NAMES, len(NAMES))
        facts: list[tuple[str, str, int]] = []
        sentences: list[str] = []
        words = 0
        i = 0
        while words < words_target:
            if i % 3 == 2:
                sentence = rng.choice(FILLER)
            else:
                who = people[i % len(people)]
                crop = CROPS[(i // len(people) + i) % len(CROPS)]
                if any(f[0] == who and f[1] == crop for f in facts):
                    crop = rng.choice(
                        [c for c in CROPS if (who, c) not in {(f[0], f[1]) for f in facts}]
                    )
                rows = rng.randint(2, 40)
                facts.append((who, crop, rows))
                sentence = f"On {rng.choice(DAYS)}, {who} planted {rows} rows of {crop}."
            sentences.append(sentence)
            words += len(sentence.split())
            i += 1
        who, crop, rows = rng.choice(facts)
        notes = " ".join(sentences)
        text = (
            f"Here are the notes of the Harbor Street community garden:\n\n{notes}\n\n"
            f"According to the notes, how many rows of {crop} did {who} plant?"
            " Answer with just the number."
        )
        items.append(_new("long_context", n, text, "numeric", str(rows)))
    return items


def _split(items: list[EvalItem], rng: random.Random) -> list[EvalItem]:
    by_category: dict[str, list[EvalItem]] = {}
    for item in items:
        by_category.setdefault(item.category, []).append(item)
    tune: set[str] = set()
    for members in by_category.values():
        ids = [m.id for m in members]
        rng.shuffle(ids)
        tune.update(ids[: len(ids) // 2])
    return [
        EvalItem(
            id=i.id,
            category=i.category,
            split="tune" if i.id in tune else "test",
            messages=i.messages,
            grader=i.grader,
            reference=i.reference,
            aliases=i.aliases,
            tolerance=i.tolerance,
        )
        for i in items
    ]


def build_items(seed: int = SEED) -> list[EvalItem]:
    """Every item of the shipped set, split, in a stable order."""
    rng = random.Random(seed)  # noqa: S311 - reproducible data, not secrets
    items = [
        *_questions("fact_known", FACTS_KNOWN),
        *_questions("fact_obscure", FACTS_OBSCURE),
        *_arithmetic(rng),
        *_word_problems(rng),
        *_questions("code", CODE),
        *_long_context(rng),
    ]
    return _split(items, rng)


def shipped_path() -> Path:
    return Path(__file__).with_name("data") / SHIPPED_DATASET


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else shipped_path()
    out.write_text(dump_items(build_items()), encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
