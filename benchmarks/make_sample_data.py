"""Write the demo instruction dataset shipped with the package: ``hf_uniform/data/sample.jsonl``.

The rows are generated here, deterministically (``random.Random(0)``), from templates over about twenty
task families (arithmetic, unit conversion, string edits, sorting, sentiment labels, capitals, code,
definitions, ...), so the file is the project's own work and is released under CC0 (see
``hf_uniform/data/README.md``). It is a demo for ``hf-uniform select sample ...``: varied enough that a
uniform subset visibly differs from a random one, but not a training set.

Run from the repository root (rewrites the file; the output is byte-identical on every run)::

    python benchmarks/make_sample_data.py
    python benchmarks/make_sample_data.py --check   # exit 1 if the shipped file differs from a fresh one
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "hf_uniform" / "data" / "sample.jsonl"
N_ROWS = 1200

COUNTRIES = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Portugal": "Lisbon",
    "Japan": "Tokyo", "Canada": "Ottawa", "Australia": "Canberra", "Brazil": "Brasília", "Egypt": "Cairo",
    "Kenya": "Nairobi", "India": "New Delhi", "Norway": "Oslo", "Sweden": "Stockholm", "Finland": "Helsinki",
    "Poland": "Warsaw", "Greece": "Athens", "Turkey": "Ankara", "Mexico": "Mexico City", "Peru": "Lima",
    "Chile": "Santiago", "Argentina": "Buenos Aires", "Ireland": "Dublin", "Austria": "Vienna",
    "Hungary": "Budapest", "Vietnam": "Hanoi", "Thailand": "Bangkok", "Morocco": "Rabat", "Ghana": "Accra",
    "New Zealand": "Wellington",
}
WORDS = ["river", "lantern", "meadow", "orbit", "pencil", "harvest", "glacier", "whisper", "compass", "ember",
         "violin", "harbor", "canyon", "thunder", "library", "saddle", "marble", "falcon", "blossom", "tunnel",
         "anchor", "cobalt", "puzzle", "velvet", "summit", "breeze", "quartz", "island", "garden", "rocket"]
GLOSSARY = {
    "photosynthesis": "the process by which green plants use sunlight, water and carbon dioxide to make "
                      "sugar and release oxygen",
    "inflation": "a general rise in prices over time, which lowers what a unit of money can buy",
    "algorithm": "a finite sequence of well-defined steps that solves a problem or computes a result",
    "ecosystem": "a community of living organisms together with the physical environment they interact with",
    "metaphor": "a figure of speech that describes something by calling it something else it resembles",
    "gravity": "the force by which masses attract one another",
    "democracy": "a system of government in which citizens choose their leaders by voting",
    "enzyme": "a protein that speeds up a chemical reaction in a living organism without being used up",
    "latitude": "the angular distance of a place north or south of the equator",
    "recursion": "a method in which a function solves a problem by calling itself on smaller instances",
    "erosion": "the gradual wearing away of rock or soil by water, wind or ice",
    "bandwidth": "the amount of data that can be sent over a connection in a given time",
    "haiku": "a short Japanese poem of three lines with five, seven and five syllables",
    "vaccine": "a preparation that trains the immune system to recognise and fight a specific pathogen",
    "compound interest": "interest computed on both the original amount and the interest already added",
    "opportunity cost": "the value of the best alternative given up when a choice is made",
}
POSITIVE = ["I loved every minute of the {x}.", "The {x} was wonderful and the staff were kind.",
            "What a delightful {x}; I would recommend it to anyone.", "The {x} exceeded all my expectations."]
NEGATIVE = ["The {x} was a complete waste of time.", "I was disappointed by the {x} and will not return.",
            "The {x} was noisy, slow and overpriced.", "Nothing about the {x} worked as promised."]
THINGS = ["concert", "hotel", "restaurant", "film", "museum tour", "train ride", "workshop", "book", "app",
          "cooking class"]
ANIMALS = {"dog": "mammal", "salmon": "fish", "eagle": "bird", "frog": "amphibian", "cobra": "reptile",
           "whale": "mammal", "penguin": "bird", "shark": "fish", "tortoise": "reptile", "salamander": "amphibian",
           "bat": "mammal", "owl": "bird"}
TOPICS = ["saving energy at home", "learning a new language", "staying focused while studying",
          "preparing for a job interview", "keeping houseplants alive", "reducing food waste",
          "sleeping better", "starting to run", "organising a small team", "writing clear emails"]
TIPS = ["Set one small, concrete goal for each day.", "Keep a short written list and review it each evening.",
        "Remove distractions before you start.", "Ask someone for feedback early.",
        "Measure your progress once a week.", "Start with the easiest step to build momentum.",
        "Prepare what you need the night before.", "Take a short break every hour."]


def _num(rng: random.Random) -> int:
    return rng.randint(2, 999)


def add(rng: random.Random) -> dict:
    a, b = _num(rng), _num(rng)
    return {"instruction": "Add the two numbers.", "input": f"{a} and {b}", "output": f"{a} + {b} = {a + b}."}


def multiply(rng: random.Random) -> dict:
    a, b = rng.randint(2, 99), rng.randint(2, 99)
    return {"instruction": f"What is {a} multiplied by {b}?", "input": "", "output": f"{a} × {b} = {a * b}."}


def percent(rng: random.Random) -> dict:
    p, n = rng.choice([5, 10, 15, 20, 25, 40, 50, 75]), rng.randint(1, 40) * 20
    return {"instruction": f"Calculate {p}% of {n}.", "input": "",
            "output": f"{p}% of {n} is {p * n / 100:g}."}


def convert(rng: random.Random) -> dict:
    kind = rng.randrange(3)
    if kind == 0:
        c = rng.randint(-30, 45)
        return {"instruction": "Convert the temperature from Celsius to Fahrenheit.", "input": f"{c} °C",
                "output": f"{c} °C is {c * 9 / 5 + 32:g} °F."}
    if kind == 1:
        km = rng.randint(1, 500)
        return {"instruction": "Convert this distance to miles, rounded to one decimal place.",
                "input": f"{km} km", "output": f"{km} km is about {km * 0.621371:.1f} miles."}
    kg = rng.randint(1, 200)
    return {"instruction": "How many pounds is this mass? Round to one decimal place.", "input": f"{kg} kg",
            "output": f"{kg} kg is about {kg * 2.20462:.1f} lb."}


def reverse_word(rng: random.Random) -> dict:
    w = rng.choice(WORDS)
    return {"instruction": "Write the word backwards.", "input": w, "output": w[::-1]}


def count_letters(rng: random.Random) -> dict:
    w = rng.choice(WORDS)
    ch = rng.choice(sorted(set(w)))
    n = w.count(ch)
    return {"instruction": f"How many times does the letter '{ch}' appear in the word '{w}'?", "input": "",
            "output": f"The letter '{ch}' appears {n} time{'s' if n != 1 else ''} in '{w}'."}


def sort_numbers(rng: random.Random) -> dict:
    xs = [rng.randint(-50, 200) for _ in range(rng.randint(4, 9))]
    order = rng.choice(["ascending", "descending"])
    ys = sorted(xs, reverse=order == "descending")
    return {"instruction": f"Sort the list of numbers in {order} order.", "input": ", ".join(map(str, xs)),
            "output": ", ".join(map(str, ys))}


def alphabetise(rng: random.Random) -> dict:
    ws = rng.sample(WORDS, rng.randint(3, 7))
    return {"instruction": "Put these words in alphabetical order.", "input": " ".join(ws),
            "output": " ".join(sorted(ws))}


def capital(rng: random.Random) -> dict:
    country = rng.choice(sorted(COUNTRIES))
    q = rng.choice(["What is the capital of {c}?", "Name the capital city of {c}.",
                    "Which city is the capital of {c}?"])
    return {"instruction": q.format(c=country), "input": "",
            "output": f"The capital of {country} is {COUNTRIES[country]}."}


def sentiment(rng: random.Random) -> dict:
    pos = rng.random() < 0.5
    text = rng.choice(POSITIVE if pos else NEGATIVE).format(x=rng.choice(THINGS))
    return {"instruction": "Classify the sentiment of the review as positive or negative.", "input": text,
            "output": "Positive" if pos else "Negative"}


def classify_animal(rng: random.Random) -> dict:
    a = rng.choice(sorted(ANIMALS))
    return {"instruction": "Is this animal a mammal, bird, fish, reptile or amphibian?", "input": a,
            "output": f"A {a} is a {ANIMALS[a]}."}


def define(rng: random.Random) -> dict:
    term = rng.choice(sorted(GLOSSARY))
    q = rng.choice(["Define the term.", "Explain what this word means in one sentence.",
                    "Give a short definition."])
    return {"instruction": q, "input": term, "output": f"{term.capitalize()} is {GLOSSARY[term]}."}


def python_function(rng: random.Random) -> dict:
    kind = rng.randrange(4)
    n = rng.randint(2, 12)
    if kind == 0:
        return {"instruction": f"Write a Python function that returns the {n}th power of a number.", "input": "",
                "output": f"def power_{n}(x):\n    return x ** {n}"}
    if kind == 1:
        return {"instruction": f"Write a Python function that returns the first {n} even numbers.", "input": "",
                "output": f"def first_evens():\n    return [2 * i for i in range({n})]"}
    if kind == 2:
        w = rng.choice(WORDS)
        return {"instruction": "Write a Python expression that checks whether a string is a palindrome, "
                               "and apply it to the input.", "input": w,
                "output": f"'{w}' == '{w}'[::-1]  # {w == w[::-1]}"}
    return {"instruction": f"Write a SQL query that returns the {n} most recent rows of the table orders.",
            "input": "", "output": f"SELECT * FROM orders ORDER BY created_at DESC LIMIT {n};"}


def advice(rng: random.Random) -> dict:
    topic = rng.choice(TOPICS)
    tips = rng.sample(TIPS, 3)
    return {"instruction": f"Give three tips for {topic}.", "input": "",
            "output": "\n".join(f"{i + 1}. {t}" for i, t in enumerate(tips))}


def rewrite_formal(rng: random.Random) -> dict:
    thing = rng.choice(THINGS)
    return {"instruction": "Rewrite the sentence in a formal tone.", "input": f"hey, the {thing} is gonna be late",
            "output": f"Please note that the {thing} will be delayed."}


def summarise(rng: random.Random) -> dict:
    a, b = rng.sample(WORDS, 2)
    n = rng.randint(3, 40)
    text = (f"The town of {a.capitalize()}ford held its annual {b} festival this weekend. About {n} hundred "
            f"visitors came, local bands played, and the organisers said they plan to double the size next year.")
    return {"instruction": "Summarise the text in one sentence.", "input": text,
            "output": f"{a.capitalize()}ford's {b} festival drew about {n} hundred visitors and will grow next year."}


def fizzbuzz(rng: random.Random) -> dict:
    n = rng.randint(1, 300)
    out = "FizzBuzz" if n % 15 == 0 else "Fizz" if n % 3 == 0 else "Buzz" if n % 5 == 0 else str(n)
    return {"instruction": "Apply the FizzBuzz rule to the number.", "input": str(n), "output": out}


def haiku(rng: random.Random) -> dict:
    w = rng.choice(WORDS)
    return {"instruction": f"Write a haiku about a {w}.", "input": "",
            "output": f"Quiet {w} waits\nmorning light across the field\nthe day begins slow"}


def even_odd(rng: random.Random) -> dict:
    n = rng.randint(0, 10_000)
    return {"instruction": "Is the number even or odd?", "input": str(n), "output": "Even" if n % 2 == 0 else "Odd"}


def email(rng: random.Random) -> dict:
    thing = rng.choice(THINGS)
    day = rng.choice(["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"])
    return {"instruction": "Write a short email asking to reschedule a meeting.",
            "input": f"Meeting about the {thing}, originally on {day}.",
            "output": f"Hello,\n\nCould we move our meeting about the {thing}, planned for {day}, to later in the "
                      "week? Please let me know which time suits you.\n\nBest regards"}


FAMILIES: list[Callable[[random.Random], dict]] = [
    add, multiply, percent, convert, reverse_word, count_letters, sort_numbers, alphabetise, capital, sentiment,
    classify_animal, define, python_function, advice, rewrite_formal, summarise, fizzbuzz, haiku, even_odd, email,
]


def make_rows(n: int = N_ROWS, seed: int = 0) -> list[dict]:
    """``n`` distinct rows (``instruction``, ``input``, ``output``), the same for the same ``n`` and ``seed``.

    Example:
        >>> rows = make_rows(50)
        >>> len(rows), sorted(rows[0]), rows == make_rows(50)
        (50, ['input', 'instruction', 'output'], True)
    """
    rng = random.Random(seed)
    rows: list[dict] = []
    seen: set[str] = set()
    weights = [3 if f in (add, multiply, sort_numbers, capital, sentiment) else 2 for f in FAMILIES]
    while len(rows) < n:
        row = rng.choices(FAMILIES, weights=weights)[0](rng)
        key = json.dumps(row, sort_keys=True)
        if key not in seen:  # families with few distinct rows (haiku, animals) stop adding once exhausted
            seen.add(key)
            rows.append(row)
    return rows


def render(rows: list[dict]) -> str:
    """The JSON Lines text of ``rows`` (UTF-8, one object per line)."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check`` compare) the shipped sample; returns the exit status."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 if the shipped file differs from a fresh one")
    args = p.parse_args(argv)
    text = render(make_rows())
    if args.check:
        same = OUT.exists() and OUT.read_text(encoding="utf-8") == text
        print(f"{OUT}: {'up to date' if same else 'differs from make_sample_data.py output'}")
        return 0 if same else 1
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text, encoding="utf-8", newline="\n")
    print(f"wrote {N_ROWS} rows to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
