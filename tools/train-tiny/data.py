"""Training and evaluation data for hearth-tiny, generated from tables in this file.

No data set is downloaded: every dialogue is made here from templates and small
tables (numbers below 100, days, months, unit factors, capitals, planets, colours,
opposites, greetings), plus questions outside those tables whose answer is
"I don't know."

Every question is a `Sample(task, key, messages)`. `key` names what is asked (an
operand pair, a fact, a fact with a phrasing); `split_of(task, key)` assigns it to
"train" or "test" by a stable hash, so the held-out test set never shares a question
with training:

- arithmetic on numbers below 100 (add, sub, compare) and counting are split on the
  operands: a test pair such as 37 + 52 is never seen in training, in any phrasing,
  so the model has to compute it;
- memorised facts (times tables, units with odd factors, capitals, planets, colours,
  opposites, spelling, days, months) are split on (fact, phrasing): the fact is
  taught, the exact test question is not.
"""

import random
import zlib
from dataclasses import dataclass

SYSTEM_PROMPTS = [
    "You are a helpful assistant.",
    "You are hearth-tiny, a small assistant.",
    "Answer briefly.",
    "You are a friendly assistant. Keep answers short.",
]

IDK = "I don't know."

# --- tables ---------------------------------------------------------------------

DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = [
    ("January", 31), ("February", 28), ("March", 31), ("April", 30), ("May", 31),
    ("June", 30), ("July", 31), ("August", 31), ("September", 30), ("October", 31),
    ("November", 30), ("December", 31),
]
ORDINALS = [
    "1st", "2nd", "3rd", "4th", "5th", "6th", "7th", "8th", "9th", "10th", "11th", "12th",
]

CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid",
    "Portugal": "Lisbon", "England": "London", "Ireland": "Dublin", "Norway": "Oslo",
    "Sweden": "Stockholm", "Finland": "Helsinki", "Denmark": "Copenhagen",
    "Poland": "Warsaw", "Austria": "Vienna", "Greece": "Athens", "Egypt": "Cairo",
    "Japan": "Tokyo", "China": "Beijing", "India": "New Delhi", "Russia": "Moscow",
    "Canada": "Ottawa", "Mexico": "Mexico City", "Brazil": "Brasilia",
    "Argentina": "Buenos Aires", "Peru": "Lima", "Chile": "Santiago",
    "Kenya": "Nairobi", "Australia": "Canberra", "Turkey": "Ankara",
    "Iran": "Tehran", "Thailand": "Bangkok", "Vietnam": "Hanoi",
    "South Korea": "Seoul", "Cuba": "Havana", "Hungary": "Budapest",
    "Belgium": "Brussels", "the Netherlands": "Amsterdam", "Switzerland": "Bern",
    "the United States": "Washington", "Morocco": "Rabat", "Nigeria": "Abuja",
}
# Real places the model is not taught: asking for their capital gets IDK.
UNTAUGHT_COUNTRIES = [
    "Bolivia", "Nepal", "Mongolia", "Iceland", "Latvia", "Estonia", "Lithuania",
    "Slovakia", "Croatia", "Serbia", "Ghana", "Senegal", "Uruguay", "Paraguay",
    "Ecuador", "Laos", "Cambodia", "Bhutan", "Malta", "Cyprus", "Jordan", "Oman",
    "Qatar", "Fiji", "Samoa", "Tonga", "Belize", "Panama", "Honduras", "Zambia",
]
PLANETS = ["Mercury", "Venus", "Earth", "Mars", "Jupiter", "Saturn", "Uranus", "Neptune"]
COLOURS = {
    "the sky": "blue", "grass": "green", "a banana": "yellow", "snow": "white",
    "coal": "black", "a tomato": "red", "an orange": "orange", "a lemon": "yellow",
    "milk": "white", "a strawberry": "red", "a frog": "green", "the sun": "yellow",
    "a carrot": "orange", "chocolate": "brown", "a cherry": "red", "the sea": "blue",
    "a leaf": "green", "a crow": "black", "an eggplant": "purple", "a pumpkin": "orange",
    "blood": "red", "a cloud": "white", "a lime": "green", "soil": "brown",
    "a flamingo": "pink", "a plum": "purple", "an elephant": "grey", "a mouse": "grey",
}
OPPOSITES = [
    ("hot", "cold"), ("big", "small"), ("up", "down"), ("fast", "slow"),
    ("happy", "sad"), ("light", "dark"), ("old", "young"), ("open", "closed"),
    ("left", "right"), ("wet", "dry"), ("full", "empty"), ("hard", "soft"),
    ("high", "low"), ("early", "late"), ("strong", "weak"), ("rich", "poor"),
    ("long", "short"), ("in", "out"), ("day", "night"), ("good", "bad"),
    ("thick", "thin"), ("loud", "quiet"), ("push", "pull"), ("win", "lose"),
    ("first", "last"), ("clean", "dirty"), ("near", "far"), ("buy", "sell"),
    ("start", "finish"), ("true", "false"), ("yes", "no"), ("above", "below"),
    ("heavy", "light"), ("wide", "narrow"), ("cheap", "expensive"), ("easy", "difficult"),
]
WORDS = [
    "cat", "dog", "sun", "tree", "book", "apple", "house", "water", "green", "river",
    "music", "table", "chair", "bread", "light", "stone", "cloud", "happy", "horse",
    "mouse", "paper", "pencil", "window", "garden", "orange", "banana", "school",
    "friend", "summer", "winter", "flower", "planet", "number", "yellow", "purple",
    "rabbit", "monkey", "tiger", "lemon", "candle", "bridge", "forest", "island",
    "rocket", "dragon", "castle", "kitten", "teacher", "morning", "evening", "letter",
    "hello", "world", "money", "phone", "train", "ocean", "sugar", "bottle", "cookie",
    "pizza", "piano", "guitar", "doctor", "farmer", "winner", "jacket", "bucket",
    "basket", "ticket", "button", "mirror", "pillow", "rainbow", "thunder", "blanket",
    "kitchen", "cheese", "butter", "spoon", "fork", "knife", "plate", "glass", "bird",
    "fish", "frog", "duck", "goat", "sheep", "lion", "bear", "wolf", "snake", "zebra",
]
# (from unit, to unit, factor): "n <from> is n*factor <to>".
UNITS = [
    ("meters", "centimeters", 100), ("kilometers", "meters", 1000),
    ("kilograms", "grams", 1000), ("liters", "milliliters", 1000),
    ("hours", "minutes", 60), ("minutes", "seconds", 60), ("days", "hours", 24),
    ("weeks", "days", 7), ("feet", "inches", 12), ("dozens", "items", 12),
    ("years", "months", 12), ("centimeters", "millimeters", 10),
]
UNIT_SINGULAR = {
    "meters": "meter", "kilometers": "kilometer", "kilograms": "kilogram",
    "liters": "liter", "hours": "hour", "minutes": "minute", "days": "day",
    "weeks": "week", "feet": "foot", "dozens": "dozen", "years": "year",
    "centimeters": "centimeter",
}
NAMES = [
    "Alice", "Bob", "Carol", "Dave", "Emma", "Frank", "Grace", "Henry", "Ivy", "Jack",
    "Kate", "Liam", "Mia", "Noah", "Olivia", "Paul", "Rosa", "Sam", "Tom", "Uma",
]
SYLLABLES = ["ka", "lo", "mi", "ru", "ta", "ven", "zor", "bel", "dra", "qui", "nax", "pel"]

# --- helpers --------------------------------------------------------------------


@dataclass
class Sample:
    """One question: its task, what it asks (for the split), and the chat turns."""

    task: str
    key: str
    messages: list  # [(role, content), ...] ending with the assistant's answer


def split_of(task, key):
    """'test' for about 1 in 8 keys of a task, else 'train' (stable across runs)."""
    return "test" if zlib.crc32(f"{task}|{key}".encode()) % 8 == 0 else "train"


def qa(task, key, question, answer):
    """A one-turn sample."""
    return Sample(task, key, [("user", question), ("assistant", answer)])


def pick(rng, templates):
    """A random (index, template) pair."""
    i = rng.randrange(len(templates))
    return i, templates[i]


def cap(s):
    """Capitalise the first letter only."""
    return s[:1].upper() + s[1:]


# --- arithmetic (split on operands) ---------------------------------------------

ADD_Q = [
    "What is {a} plus {b}?", "What is {a} + {b}?", "{a} + {b} = ?", "Add {a} and {b}.",
    "What is the sum of {a} and {b}?", "How much is {a} plus {b}?", "Calculate {a} + {b}.",
    "what's {a}+{b}?",
]
SUB_Q = [
    "What is {a} minus {b}?", "What is {a} - {b}?", "{a} - {b} = ?",
    "Subtract {b} from {a}.", "How much is {a} minus {b}?", "Calculate {a} - {b}.",
    "what's {a}-{b}?", "What is the difference between {a} and {b}?",
]
MUL_Q = [
    "What is {a} times {b}?", "What is {a} * {b}?", "{a} x {b} = ?", "Multiply {a} by {b}.",
    "What is the product of {a} and {b}?", "How much is {a} times {b}?",
    "Calculate {a} * {b}.", "what's {a}*{b}?",
]
CMP_Q = [
    "Which is bigger, {a} or {b}?", "Which is larger: {a} or {b}?",
    "Which number is greater, {a} or {b}?", "Is {a} bigger than {b}?",
    "Compare {a} and {b}.", "Which is smaller, {a} or {b}?",
]


def add_answer(a, b):
    """The worked answer: add b's tens, then its units, then state the result.

    Each step is a small fact the model sees over and over (a digit sum in the tens
    place; a number below 200 plus one digit), so a held-out pair is a chain of
    known steps rather than a new fact. One-step sums are stated directly."""
    s = a + b
    if a < 10 <= b:
        return f"{b} plus {a} is {s}, so {a} plus {b} is {s}."
    tens, units = b - b % 10, b % 10
    if b < 10 or units == 0:
        return f"{a} plus {b} is {s}."
    m = a + tens
    return f"{a} plus {tens} is {m}, {m} plus {units} is {s}, so {a} plus {b} is {s}."


def sub_answer(a, b):
    """The worked answer for a - b (b <= a): subtract b's tens, then its units."""
    d = a - b
    tens, units = b - b % 10, b % 10
    if b < 10 or units == 0:
        return f"{a} minus {b} is {d}."
    m = a - tens
    return f"{a} minus {tens} is {m}, {m} minus {units} is {d}, so {a} minus {b} is {d}."


def gen_add(rng, split):
    """a + b for a, b below 100."""
    while True:
        a, b = rng.randrange(100), rng.randrange(100)
        if split_of("add", f"{a},{b}") == split:
            _, t = pick(rng, ADD_Q)
            return qa("add", f"{a},{b}", t.format(a=a, b=b), add_answer(a, b))


def gen_sub(rng, split):
    """a - b for b <= a below 100."""
    while True:
        a, b = rng.randrange(100), rng.randrange(100)
        if a < b:
            a, b = b, a
        if split_of("sub", f"{a},{b}") == split:
            _, t = pick(rng, SUB_Q)
            return qa("sub", f"{a},{b}", t.format(a=a, b=b), sub_answer(a, b))


def gen_mul(rng, split):
    """Times tables up to 12 x 12 (memorised: split on fact and phrasing)."""
    while True:
        a, b = rng.randrange(13), rng.randrange(13)
        i, t = pick(rng, MUL_Q)
        key = f"{a},{b},{i}"
        if split_of("mul", key) == split:
            return qa("mul", key, t.format(a=a, b=b), f"{a} times {b} is {a * b}.")


def gen_compare(rng, split):
    """Compare two different numbers below 100."""
    while True:
        a, b = rng.randrange(100), rng.randrange(100)
        if a == b or split_of("compare", f"{min(a, b)},{max(a, b)}") != split:
            continue
        i, t = pick(rng, CMP_Q)
        hi, lo = max(a, b), min(a, b)
        if "smaller" in t:
            ans = f"{lo} is smaller than {hi}."
        elif t.startswith("Is"):
            ans = f"Yes, {a} is bigger than {b}." if a > b else f"No, {a} is smaller than {b}."
        else:
            ans = f"{hi} is bigger than {lo}."
        return qa("compare", f"{lo},{hi}", t.format(a=a, b=b), ans)


# --- counting and spelling ------------------------------------------------------


def gen_count(rng, split):
    """Next/previous number, counting ranges, letters in a word."""
    while True:
        kind = rng.randrange(4)
        if kind == 0:
            n = rng.randrange(100)
            key = f"next,{n}"
            q = rng.choice(["What number comes after {n}?", "What comes after {n}?",
                            "What is the next number after {n}?"]).format(n=n)
            ans = f"After {n} comes {n + 1}."
        elif kind == 1:
            n = rng.randrange(1, 101)
            key = f"prev,{n}"
            q = rng.choice(["What number comes before {n}?", "What comes before {n}?",
                            "What is the number before {n}?"]).format(n=n)
            ans = f"Before {n} comes {n - 1}."
        elif kind == 2:
            a = rng.randrange(0, 95)
            b = a + rng.randrange(2, 9)
            key = f"range,{a},{b}"
            q = rng.choice(["Count from {a} to {b}.", "Count from {a} up to {b}.",
                            "Please count from {a} to {b}."]).format(a=a, b=b)
            ans = ", ".join(str(x) for x in range(a, b + 1)) + "."
        else:
            w = rng.choice(WORDS)
            i = rng.randrange(3)
            key = f"len,{w},{i}"
            q = ["How many letters are in the word {w}?", "How many letters does {w} have?",
                 "Count the letters in {w}."][i].format(w=w)
            ans = f"The word {w} has {len(w)} letters."
        if split_of("count", key) == split:
            return qa("count", key, q, ans)


def gen_spell(rng, split):
    """Spell a word letter by letter; first and last letters."""
    while True:
        w = rng.choice(WORDS)
        i = rng.randrange(6)
        key = f"{w},{i}"
        if split_of("spell", key) != split:
            continue
        if i < 3:
            q = ["Spell the word {w}.", "How do you spell {w}?", "Spell {w}."][i]
            ans = f"{w} is spelled " + "-".join(w) + "."
        elif i < 5:
            q = ["What is the first letter of {w}?", "What letter does {w} start with?"][i - 3]
            ans = f"The first letter of {w} is {w[0]}."
        else:
            q = "What is the last letter of {w}?"
            ans = f"The last letter of {w} is {w[-1]}."
        return qa("spell", key, q.format(w=w), ans)


# --- calendar -------------------------------------------------------------------


def gen_days(rng, split):
    """Days of the week."""
    while True:
        d = rng.randrange(7)
        i = rng.randrange(6)
        key = f"{d},{i}"
        if split_of("days", key) != split:
            continue
        day, nxt, prv = DAYS[d], DAYS[(d + 1) % 7], DAYS[(d - 1) % 7]
        q, ans = [
            (f"What day comes after {day}?", f"The day after {day} is {nxt}."),
            (f"Which day is after {day}?", f"The day after {day} is {nxt}."),
            (f"What day comes before {day}?", f"The day before {day} is {prv}."),
            (f"If today is {day}, what day is tomorrow?", f"If today is {day}, tomorrow is {nxt}."),
            (f"If today is {day}, what day was yesterday?",
             f"If today is {day}, yesterday was {prv}."),
            (f"What is the {ORDINALS[d]} day of the week?",
             f"The {ORDINALS[d]} day of the week is {day}."),
        ][i]
        if rng.random() < 0.05:
            q, ans, key = "How many days are in a week?", "A week has 7 days.", "week"
            if split_of("days", key) != split:
                continue
        return qa("days", key, q, ans)


def gen_months(rng, split):
    """Months of the year."""
    while True:
        m = rng.randrange(12)
        i = rng.randrange(6)
        key = f"{m},{i}"
        if split_of("months", key) != split:
            continue
        name, days = MONTHS[m]
        nxt, prv = MONTHS[(m + 1) % 12][0], MONTHS[(m - 1) % 12][0]
        q, ans = [
            (f"What month comes after {name}?", f"The month after {name} is {nxt}."),
            (f"Which month is after {name}?", f"The month after {name} is {nxt}."),
            (f"What month comes before {name}?", f"The month before {name} is {prv}."),
            (f"How many days are in {name}?", f"{name} has {days} days."),
            (f"What is the {ORDINALS[m]} month of the year?",
             f"The {ORDINALS[m]} month of the year is {name}."),
            (f"Which month of the year is {name}?",
             f"{name} is the {ORDINALS[m]} month of the year."),
        ][i]
        if rng.random() < 0.05:
            q, ans, key = "How many months are in a year?", "A year has 12 months.", "year"
            if split_of("months", key) != split:
                continue
        return qa("months", key, q, ans)


# --- units ----------------------------------------------------------------------


def gen_units(rng, split):
    """n (1..20) units converted by a table factor."""
    while True:
        u = rng.randrange(len(UNITS))
        src, dst, f = UNITS[u]
        n = rng.randrange(1, 21)
        i = rng.randrange(4)
        key = f"{u},{n},{i}"
        if split_of("units", key) != split:
            continue
        s = UNIT_SINGULAR[src] if n == 1 else src
        q = [
            f"How many {dst} are in {n} {s}?", f"Convert {n} {s} to {dst}.",
            f"{n} {s} is how many {dst}?", f"How many {dst} is {n} {s}?",
        ][i]
        return qa("units", key, q, f"{n} {s} is {n * f} {dst}.")


# --- fact tables ----------------------------------------------------------------


def gen_capitals(rng, split):
    """Capital cities from CAPITALS."""
    countries = list(CAPITALS)
    while True:
        c = rng.choice(countries)
        i = rng.randrange(5)
        key = f"{c},{i}"
        if split_of("capitals", key) != split:
            continue
        city = CAPITALS[c]
        q, ans = [
            (f"What is the capital of {c}?", f"The capital of {c} is {city}."),
            (f"What's the capital city of {c}?", f"The capital of {c} is {city}."),
            (f"Which city is the capital of {c}?", f"The capital of {c} is {city}."),
            (f"Name the capital of {c}.", f"The capital of {c} is {city}."),
            (f"{city} is the capital of which country?", f"{city} is the capital of {c}."),
        ][i]
        return qa("capitals", key, q, ans)


def gen_planets(rng, split):
    """Order of the planets and a few superlatives."""
    while True:
        p = rng.randrange(8)
        i = rng.randrange(5)
        key = f"{p},{i}"
        name, o = PLANETS[p], ORDINALS[p]
        q, ans = [
            (f"What is the {o} planet from the Sun?", f"The {o} planet from the Sun is {name}."),
            (f"Which planet is {o} from the Sun?", f"The {o} planet from the Sun is {name}."),
            (f"Where is {name} in the solar system?", f"{name} is the {o} planet from the Sun."),
            (f"Which planet comes after {name}?",
             f"After {name} comes {PLANETS[p + 1]}." if p < 7 else
             f"{name} is the last planet from the Sun."),
            (f"Is {name} a planet?", f"Yes, {name} is a planet."),
        ][i]
        if rng.random() < 0.15:
            key, q, ans = rng.choice([
                ("largest", "What is the largest planet?", "The largest planet is Jupiter."),
                ("smallest", "What is the smallest planet?", "The smallest planet is Mercury."),
                ("count", "How many planets are in the solar system?",
                 "There are 8 planets in the solar system."),
                ("closest", "Which planet is closest to the Sun?",
                 "The planet closest to the Sun is Mercury."),
                ("home", "Which planet do we live on?", "We live on Earth."),
                ("red", "Which planet is called the red planet?", "Mars is the red planet."),
                ("rings", "Which planet has big rings?", "Saturn has big rings."),
            ])
        if split_of("planets", key) == split:
            return qa("planets", key, q, ans)


def gen_colours(rng, split):
    """Colours of things."""
    things = list(COLOURS)
    while True:
        t = rng.choice(things)
        i = rng.randrange(4)
        key = f"{t},{i}"
        if split_of("colours", key) != split:
            continue
        c = COLOURS[t]
        q = [f"What colour is {t}?", f"What color is {t}?", f"What is the colour of {t}?",
             f"Tell me the color of {t}."][i]
        return qa("colours", key, q, f"{cap(t)} is {c}.")


def gen_opposites(rng, split):
    """Opposites, asked in both directions."""
    while True:
        a, b = rng.choice(OPPOSITES)
        if rng.random() < 0.5:
            a, b = b, a
        i = rng.randrange(4)
        key = f"{a},{i}"
        if split_of("opposites", key) != split:
            continue
        q = [f"What is the opposite of {a}?", f"What's the opposite of {a}?",
             f"Give the opposite of {a}.", f"What is the opposite of the word {a}?"][i]
        return qa("opposites", key, q, f"The opposite of {a} is {b}.")


# --- conversation ---------------------------------------------------------------

GREETINGS = [
    ("Hello", "Hello! How can I help you?"), ("Hello!", "Hello! How can I help you?"),
    ("Hi", "Hi! How can I help you?"), ("Hi!", "Hi! How can I help you?"),
    ("Hey", "Hi! How can I help you?"), ("hello", "Hello! How can I help you?"),
    ("hi there", "Hi! How can I help you?"),
    ("Good morning", "Good morning! How can I help you?"),
    ("Good morning!", "Good morning! How can I help you?"),
    ("Good evening", "Good evening! How can I help you?"),
    ("Good afternoon", "Good afternoon! How can I help you?"),
    ("How are you?", "I am fine, thank you. How can I help you?"),
    ("How are you doing?", "I am fine, thank you. How can I help you?"),
    ("What is your name?", "I am hearth-tiny, a small model trained by hearth."),
    ("What's your name?", "I am hearth-tiny, a small model trained by hearth."),
    ("Who are you?", "I am hearth-tiny, a small model trained by hearth."),
    ("Who made you?", "I was trained by hearth on generated data."),
    ("What can you do?", "I can do arithmetic with small numbers, count, spell, and answer "
                         "questions about days, months, units, capitals, planets, colours "
                         "and opposites."),
    ("Thank you", "You are welcome!"), ("Thanks!", "You are welcome!"),
    ("thanks", "You are welcome!"), ("Thank you very much!", "You are welcome!"),
    ("Bye", "Goodbye!"), ("Goodbye", "Goodbye!"), ("See you later!", "Goodbye!"),
]


def gen_greetings(rng, split):
    """Greetings and small talk (few enough to be taught in full: split on nothing)."""
    i = rng.randrange(len(GREETINGS))
    q, ans = GREETINGS[i]
    return qa("greetings", str(i), q, ans)


def nonsense(rng):
    """A made-up capitalised word."""
    return cap("".join(rng.choice(SYLLABLES) for _ in range(rng.randrange(2, 4))))


def gen_unknown(rng, split):
    """Questions outside what is taught; the answer is IDK."""
    while True:
        kind = rng.randrange(10)
        if kind == 0:
            c = rng.choice(UNTAUGHT_COUNTRIES)
            q, key = f"What is the capital of {c}?", f"cap,{c}"
        elif kind == 1:
            c = nonsense(rng)
            q, key = f"What is the capital of {c}?", f"cap,{c}"
        elif kind == 2:
            a, b = rng.randrange(100, 1000), rng.randrange(100, 1000)
            q, key = f"What is {a} times {b}?", f"mul,{a},{b}"
        elif kind == 3:
            q, key = f"Who is {rng.choice(NAMES)} {nonsense(rng)}?", "who"
        elif kind == 4:
            w = nonsense(rng).lower()
            q, key = f"What does the word {w} mean?", f"mean,{w}"
        elif kind == 5:
            q, key = rng.choice([
                ("Who wrote Hamlet?", "hamlet"), ("What is the meaning of life?", "life"),
                ("How do I bake bread?", "bread"), ("What is the speed of light?", "light"),
                ("Who won the world cup in 1998?", "cup"), ("What is DNA?", "dna"),
                ("How tall is Mount Everest?", "everest"), ("Who painted the Mona Lisa?", "mona"),
                ("What will the weather be tomorrow?", "weather"),
                ("What time is it?", "time"), ("Write a poem about the sea.", "poem"),
                ("What is the population of Tokyo?", "tokyo"),
                ("Translate hello into Japanese.", "translate"),
                ("What is the square root of 2?", "sqrt"),
                ("When did World War 2 end?", "ww2"), ("How does a car engine work?", "engine"),
                ("What is the best programming language?", "lang"),
                ("Tell me a joke.", "joke"), ("Who is the president?", "president"),
                ("What is quantum physics?", "quantum"),
            ])
        elif kind == 6:
            q, key = f"What colour is a {nonsense(rng).lower()}?", "colour"
        elif kind == 7:
            q, key = f"What is the opposite of {nonsense(rng).lower()}?", "opp"
        elif kind == 8:
            q, key = f"Where does {rng.choice(NAMES)} live?", "where"
        else:
            q, key = f"How old is {rng.choice(NAMES)}?", "age"
        if split_of("unknown", key) == split or key in ("who", "colour", "opp"):
            return qa("unknown", key, q, IDK)


GENERATORS = {
    "add": (gen_add, 16), "sub": (gen_sub, 14), "mul": (gen_mul, 8),
    "compare": (gen_compare, 7), "count": (gen_count, 7), "spell": (gen_spell, 5),
    "days": (gen_days, 4), "months": (gen_months, 4), "units": (gen_units, 7),
    "capitals": (gen_capitals, 6), "planets": (gen_planets, 4), "colours": (gen_colours, 4),
    "opposites": (gen_opposites, 5), "greetings": (gen_greetings, 3),
    "unknown": (gen_unknown, 6),
}
TASKS = list(GENERATORS)


def mix_weights(overrides=None):
    """Task weights of the training mix: GENERATORS' defaults, with overrides."""
    w = {t: g[1] for t, g in GENERATORS.items()}
    w.update(overrides or {})
    return [w[t] for t in TASKS]


def sample(rng, split="train", task=None, weights=None):
    """One sample from `split`, of `task` or of a task drawn by `weights`
    (default: mix_weights())."""
    if task is None:
        task = rng.choices(TASKS, weights=weights or mix_weights())[0]
    return GENERATORS[task][0](rng, split)


def dialogue(rng, weights=None):
    """A training dialogue: optional system prompt, then 1-3 question/answer turns."""
    messages = []
    if rng.random() < 0.2:
        messages.append(("system", rng.choice(SYSTEM_PROMPTS)))
    turns = rng.choices([1, 2, 3], weights=[6, 3, 1])[0]
    for _ in range(turns):
        messages.extend(sample(rng, weights=weights).messages)
    return messages


def render(messages, add_generation_prompt=False):
    """ChatML text of `messages`, exactly as the GGUF's chat template renders it."""
    out = "".join(f"<|im_start|>{r}\n{c}<|im_end|>\n" for r, c in messages)
    if add_generation_prompt:
        out += "<|im_start|>assistant\n"
    return out


def test_set(n_per_task, seed=1234):
    """Held-out questions: n_per_task distinct test-split samples per task."""
    rng = random.Random(seed)
    out = []
    for task in TASKS:
        seen, tries = set(), 0
        while len(seen) < n_per_task and tries < 200 * n_per_task:
            tries += 1
            s = sample(rng, "test", task)
            q = s.messages[0][1]
            if q in seen:
                continue
            seen.add(q)
            out.append(s)
    return out


# Tasks whose every answer can be listed by sampling; for the others (operands below
# 100) a held-out question always needs a computation the model has not seen.
FINITE_TASKS = ["mul", "spell", "days", "months", "units", "capitals", "planets",
                "colours", "opposites", "greetings"]


def taught_answers(n_per_task=20000, seed=77):
    """Answers that training teaches, for FINITE_TASKS (by sampling the train split).

    A held-out question whose answer is in here is a paraphrase of a taught fact;
    one whose answer is not asks the fact in a direction never taught for that item
    (e.g. "Paris is the capital of which country?" when only "What is the capital of
    France?" was trained), which is what small language models are known to fail
    (the "reversal curse")."""
    rng = random.Random(seed)
    return {s.messages[-1][1] for t in FINITE_TASKS for s in
            (sample(rng, "train", t) for _ in range(n_per_task))}
