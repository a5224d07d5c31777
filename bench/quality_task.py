"""A narrow, checkable task for the distillation quality bench: the first letter of a word.

Its words and checker are the ``noun_letter`` and ``madeup_letter`` families of
``bench/focused_tasks.py``, on which ``bench/distil_quality.py`` and
``bench/defaults_sweep.py`` distil the embedded SmolLM2-135M-Instruct teacher into a
half-depth student from a few hundred teacher answers, within minutes on two CPU cores. That needs a task whose teacher answers are short,
correct most of the time, in one consistent format, and whose rule a small student can learn
from ~300-600 examples. Each item asks::

    What is the first letter of the word "lantern"? Answer with just the letter.

and the reference is the upper-case letter (``"L"``). Greedy SmolLM2-135M-Instruct gets 93% of
the 200 held-out items of seed 0 right (94% of 600 train items), mean 14.9 output tokens, and
85-87% of its answers are exactly ``The first letter of the word "lantern" is "L".`` (most of
the rest use a lower-case letter; a few ramble to the token cap). A student has to copy the
quoted word and map its first token to a letter: a rule, not memorised facts, which held-out
words (never seen in training) test. 200 answers take ~22 s on two idle CPU cores, model load
included (minutes when other jobs share the cores).

Candidates measured with the teacher, greedy, <= 24 new tokens (accuracy with a strict
extraction, mean output tokens): first letter of a common noun 92% / 14.5 (151-word pilot);
first letter of a made-up word 85% / 16.0; capital of a country (20 well-known ones) ~80% /
8.9, but a fixed list of facts the half-depth student cannot learn for unseen countries;
antonyms (20 pairs) ~95% loose / 11.7, same problem; one-digit addition ~70% / 8-9 with
inconsistent formats and only 100 distinct inputs; two-digit addition 35%; "which is larger"
20-60%; even/odd 48%; number after N 17%; letter after X 44%; last letter of a word 6%;
upper-casing a word ~0%; last word of a sentence 27%.

Items come from :data:`WORDS` (994 common English nouns, 2-13 letters). A word belongs to one
split for good, by a hash of the word (a quarter of them are ``heldout``), so the splits never
share a word whatever the seeds; ``seed`` only picks and orders words within a split.

    python bench/quality_task.py     # teacher on 200 held-out items: accuracy, tokens, time
    python bench/quality_task.py --n 50 --show 10
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["WORDS", "SPLITS", "PROMPT", "make_items", "split_of", "check", "answer_letters"]

#: The prompt; ``{word}`` is replaced by a word from :data:`WORDS`.
PROMPT = 'What is the first letter of the word "{word}"? Answer with just the letter.'

#: Split names; a word is in ``heldout`` when its hash is 0 mod ``_HELDOUT_EVERY``.
SPLITS = ("train", "heldout")
_HELDOUT_EVERY = 4

#: Common English nouns, lower case, unique, sorted (first letters follow English, so always
#: answering "C" or "S" scores about 8%).
WORDS: tuple[str, ...] = tuple("""
    able acid acorn actor adult advice age agent air alarm album alley almond amber angel anger
    angle animal ankle answer ant anvil apple apricot apron arch area arena arm army arrow art
    artist ash atlas attic aunt autumn avenue avocado award axe axle baby back bacon badge bag
    bagel baker ball balloon bamboo banana band banjo bank barn barrel base basin basket bat bath
    battle bay beach beacon beak beam bean bear beard bed bee beef beetle bell belt bench berry
    bicycle bird birth biscuit blade blanket blender block blood blossom board boat body bone
    bonnet book boot border bottle bow bowl box boy brain branch brass bread breeze brick bride
    bridge broom brother brush bubble bucket buckle bud buffalo bugle bull burrow bus bush butter
    button cabin cable cactus cage cake calf camel camera camp canal candle candy cannon canoe cap
    captain car card carpet carrot cart castle cat cattle cave ceiling cellar cent chain chair
    chalk channel cheek cheese cherry chess chest chicken child chin cider cinema circle city clay
    cliff clock cloth cloud clover clown coach coal coast coat cobra cobweb coffee coin collar
    colour comb comet compass copper cord cork corn corner cotton cousin cow crab cradle crane
    crayon cream creek cricket crow crown crumb cup cupboard curtain cushion dagger dairy daisy
    dancer date daughter dawn deck deer denim desert desk dessert dew diamond diary dice dinner
    dinosaur dish ditch doctor dog doll dollar dolphin domino donkey door dove dragon dragonfly
    drawer dream dress drink driver drizzle drum duck dune dust eagle ear earth easel east echo
    eclipse edge eel egg elbow elephant elevator elf elk ember emerald empire emu energy engine
    envelope eraser error escalator essay estate evening event exam exit eye face fact fairy falcon
    falls family fan farm farmer father feast feather fence ferry fiddle field fig film finger fire
    fish flag flame fleece flock floor flour flower flute fog folder food foot forest forge fork
    fort fossil fountain fox frame freezer friend frog fruit fur gadget galaxy game garage garden
    garlic garnet gate gazelle gem geyser ghost giant gift ginger giraffe girl glacier glass globe
    glove glue goat goblet goblin gold goose gorilla gown grain grape grass gravel gravy grill
    ground group guard guest guitar gull gum gutter habit hair hall hammer hamster hand harbor harp
    hat hatchet hawk hay head heart hedge helmet hen herb hero heron highway hill hippo hive hobby
    hole honey hood hook horn horse hose hotel hound house hurdle husk hut ice iceberg icicle icing
    icon idea igloo igniter illness image incense inch index infant ink inn insect insult invoice
    iris iron island isle item ivory ivy jackal jacket jaguar jail jam jar jasmine javelin jaw
    jeans jelly jellyfish jersey jet jewel jigsaw job jockey jogger joke journal journey judge jug
    juice junction jungle jury kale kangaroo kayak kennel kernel kettle kettledrum key keyboard kid
    kidney king kingdom kiosk kipper kit kitchen kite kitten kiwi knapsack knee knife knight knob
    knot koala label lace ladder lady lagoon lake lamb lamp lane lantern laptop larch lasso lava
    lawn lawyer leaf lemon lemonade lens leopard letter lettuce library lichen lid lighthouse lily
    lime line linen lion lip liquid list lizard lobby lobster lock locket locust log lounge lunch
    machine mackerel magnet magpie maid mail mammoth mango mantle map maple marble market marsh
    mascot mask meadow meal medal melon menu metal meteor milk mill mind minnow mint mirror mitten
    model mole monkey moon moose mosaic moth motor mouse mouth mud muffin mug museum music mustard
    nacho nail name napkin narwhal nation navy neck nectar needle needlework nephew nest net news
    newt nickel niece night nightgown noodle noon north nose nostril note notebook novel nugget
    number nurse nut nutmeg oak oar oasis oatmeal oats obelisk object oboe ocean octopus office oil
    olive omelet onion opal opera orange orbit orchard orchid organ ostrich otter outlet oven
    overcoat owl owlet owner ox oyster paddle page pail paint palace palm pan panda pansy paper
    parade parcel parent park parrot parsnip party path peach peanut pear pearl pebble pelican pen
    pencil penguin people pepper pepperoni petal piano pickle picnic pie pig pigeon pillow pilot
    pin pine pinecone pipe pirate pizza planet plank plant plate plum pocket poem pond pony pool
    pot potato powder pretzel pumpkin puppet puppy purse quail quarry quarter quartz queen quest
    question queue quiche quill quilt quince quiz quokka quote rabbit raccoon radio radish raft
    rail rain rainbow raisin rake ranch raven ravine razor record reef relish reptile rhino rhubarb
    ribbon rice riddle ring river rivet road robin robot rock rocket rollercoaster roof room
    rooster root rope rose ruby rug ruler saddle sail sailor salad salmon salt sand sandal sardine
    satchel saucer scarf school scissors scooter sea seal seashell seed sequin shadow shark sheep
    shelf shell ship shirt shoe shop shovel sickle silk silver singer sister skate skirt skunk sky
    sled snail snake soap sock sofa soup sparrow spider spinach sponge spoon square squirrel stage
    stapler star station stone storm stove straw stream street sugar suit summer sun swan sweater
    sword table tadpole tail tailor tangerine tank tassel tea teacher teapot telescope temple tent
    thimble thistle thread throne thumb ticket tiger timber toast toe toffee tomato tongue tool
    tooth torch towel tower town toy tractor train tray tree trolley trophy truck trumpet tuba
    tulip tuna tunnel turkey turtle ukulele ulcer umbrella umpire uncle underpass unicorn uniform
    unit universe upstairs urchin urn usher utensil vacuum valley valve van vanilla vapor vase
    vault velvet vendor veranda verse vessel vest village vine vinegar violin viper visitor visor
    voice volcano vote voyage vulture waffle wagon waiter wall walnut walrus wand war warden wasp
    watch water wave wax weasel weaver well whale wheat wheel wheelbarrow whip whistle widow wife
    wigwam willow wind windmill window wing winter wire witch wizard wolf woman wombat wood wool
    worm wreath wrench wrist writer xylophone yacht yak yam yard yardstick yarn year yeast yodel
    yogurt yolk youth yoyo zebra zeppelin zero zinc zipper zone zoo zucchini
""".split())


def split_of(word: str) -> str:
    """The split that ``word`` belongs to, fixed by its sha256 (independent of any seed)."""
    h = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "big")
    return "heldout" if h % _HELDOUT_EVERY == 0 else "train"


def make_items(n: int, *, seed: int, split: str) -> list[dict]:
    """``n`` items ``{"id", "prompt", "reference"}`` from ``split``, deterministic for a seed.

    Words are drawn without replacement, so ``n`` can be at most the split's size (748 train
    words and 246 held-out ones); larger ``n`` raises ``ValueError``. The same seed gives
    the same items in the same order; train and held-out items never share a word.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    pool = [w for w in WORDS if split_of(w) == split]
    if not 0 <= n <= len(pool):
        raise ValueError(f"n must be between 0 and {len(pool)} for split {split!r}, not {n}")
    words = random.Random(f"quality-task:{split}:{seed}").sample(pool, n)
    return [{"id": f"{split}-{w}", "prompt": PROMPT.format(word=w), "reference": w[0].upper()}
            for w in words]


# --------------------------------------------------------------------------------------------
# Checking answers
# --------------------------------------------------------------------------------------------

# The letter logic is synth's own choice verifier (synth.curate.verify_choice), the one
# `synth eval` applies to a one-letter reference: the bench and the product grade alike.
from synth.curate.verify_choice import answer_letters  # noqa: E402


def check(answer: str, reference: str) -> bool:
    """True when ``answer`` names exactly one letter and it is ``reference`` (any case).

    Accepted: ``C``, ``c.``, ``"C"``, ``**C**``, ``Answer: C``, ``The first letter of the
    word "cat" is "C".``, ``It starts with C.``, ``C is the first letter``. Wrong: no letter
    named (``It is a capital letter.``), two letters in one (``"CH"``), or any second
    candidate, even one the answer rules out (``"C" or "K"``, ``C, maybe S``,
    ``"C", not "S"``, ``A B C ... Z``): negations are not parsed, so hedging never pays.
    """
    ref = reference.strip().upper()
    if len(ref) != 1 or not ref.isascii() or not ref.isalpha():
        raise ValueError(f"reference must be one letter, not {reference!r}")
    return answer_letters(answer) == {ref}


#: ``(answer, reference, expected check)``: the checker's contract, asserted by ``__main__``.
CHECK_EXAMPLES: tuple[tuple[str, str, bool], ...] = (
    ('The first letter of the word "cheese" is "C".', "C", True),
    ("C", "C", True),
    ("c", "C", True),
    (" c.\n", "C", True),
    ("**C**", "C", True),
    ("`c`", "C", True),
    ("Answer: C", "C", True),
    ("It starts with C.", "C", True),
    ("C is the first letter of cheese.", "C", True),
    ('The first letter of the word "anchor" is "A".', "A", True),
    ("The first letter of anchor is A.", "A", True),
    ("A is the first letter of anchor.", "A", True),
    ('I think the answer is "I".', "I", True),
    ('The first letter of the word "cheese" is "S".', "C", False),
    ('The first letter of the word "cheese" is a capital letter.', "C", False),
    ('The first letter of the word "cheese" is "CH".', "C", False),
    ("cheese", "C", False),
    ('"C" or "K"', "C", False),
    ("C or K", "C", False),
    ("c or k", "C", False),
    ("C, maybe S", "C", False),
    ('It is "C", not "S".', "C", False),
    ('"carrot" is a combination of two letters: "C" and "R".', "C", False),
    ("A B C D E F G H I J K L M N O P Q R S T U V W X Y Z", "C", False),
    ("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "C", False),
    ("A-Z", "A", False),
    ("", "C", False),
    ("I'm not sure.", "I", False),
    ("e.g. C", "C", True),
)


# --------------------------------------------------------------------------------------------
# Measuring the teacher
# --------------------------------------------------------------------------------------------

def _self_check() -> None:
    bad = [(a, r, e) for a, r, e in CHECK_EXAMPLES if check(a, r) != e]
    if bad:
        raise SystemExit(f"check() disagrees with CHECK_EXAMPLES: {bad}")
    train = {w for w in WORDS if split_of(w) == "train"}
    if len(set(WORDS)) != len(WORDS) or train.isdisjoint(WORDS) or len(train) == len(WORDS):
        raise SystemExit("WORDS must be unique and split into both train and heldout")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="items (default 200)")
    ap.add_argument("--split", choices=SPLITS, default="heldout")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--teacher", default="local:smollm2-135m-instruct")
    ap.add_argument("--max-tokens", type=int, default=24)
    ap.add_argument("--out", type=Path, default=None,
                    help="run directory (default: a fresh temporary one; reusing one resumes "
                         "from its cache, which makes the timing meaningless)")
    ap.add_argument("--show", type=int, default=5, help="wrong answers to print")
    args = ap.parse_args(argv)
    _self_check()

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import synth

    items = make_items(args.n, seed=args.seed, split=args.split)
    out = args.out or Path(tempfile.mkdtemp(prefix="quality-task-"))
    out.mkdir(parents=True, exist_ok=True)
    prompts = out / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(it) + "\n" for it in items))
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    res = synth.generate(input=prompts, teacher=args.teacher, out=out,
                         max_tokens=args.max_tokens, temperature=0.0)
    wall = time.perf_counter() - t0

    cols = ["prompt_id", "response", "reference", "output_tokens"]
    rows = res.table().select(cols).to_pylist()
    ok = [check(r["response"] or "", r["reference"]) for r in rows]
    toks = [r["output_tokens"] or 0 for r in rows]
    words = {it["id"]: it["prompt"].split('"')[1] for it in items}
    template = sum(r["response"] == f'The first letter of the word "{words[r["prompt_id"]]}" is '
                                   f'"{r["reference"]}".' for r in rows)
    n = len(rows)
    print(f"teacher {args.teacher}, {args.split} split, seed {args.seed}, {n} items, greedy, "
          f"max {args.max_tokens} tokens")
    print(f"accuracy {sum(ok) / n:.1%} ({sum(ok)}/{n}); exact teacher template {template}/{n}")
    print(f"output tokens: mean {sum(toks) / n:.1f}, max {max(toks)}")
    print(f"wall {wall:.1f}s for {n} answers, model load included ({wall / n * 1000:.0f} ms each); "
          f"1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after "
          f"(other processes on these cores slow it down)")
    wrong = [r for r, good in zip(rows, ok) if not good]
    for r in wrong[:args.show]:
        print(f"  wrong: {r['reference']!r} <- {r['response']!r}")
    print(f"run directory: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
