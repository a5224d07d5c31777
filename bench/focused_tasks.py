"""Focused task families for choosing ``synth train``'s defaults (``bench/defaults_sweep.py``).

Each family is a narrow skill with short answers, generated programmatically, graded by a
hedge-proof checker. Teacher = the embedded SmolLM2-135M-Instruct, greedy, <= 32 tokens
(``python bench/defaults_sweep.py prepare`` measures it; numbers in its report):

================  ============================================================================
``noun_letter``   First letter of a common noun (the 994 nouns of ``bench/quality_task.py``).
                  Teacher ~93%.
``madeup_letter`` First letter of a made-up, pronounceable word ("blorvic"): the student
                  cannot lean on having seen the word, only on copying its first token.
                  Teacher ~84%.
``addition``      ``What is 3 + 5?``: every one-digit sum, 100 items in all, so its splits
                  are small (~50 / 21 / 26). Teacher ~85% with this phrasing.
``past_tense``    Past tense of a regular English verb ("walk" -> "walked"): a spelling rule
                  on held-out verbs. Teacher only ~46% (it coins "needen", "tradeed",
                  "judgement" for common verbs): below the ~60% wanted, kept as a hard family.
``antonym``       Opposite of a common word ("hot" -> "cold"), both directions of ~250
                  pairs. Teacher ~30% on this broad list (~90% on the 20 commonest pairs):
                  it hedges ("sad" or "sadness") and coins words; kept as a hard family.
================  ============================================================================

Candidates the teacher cannot do (measured greedy, <= 32 tokens, see also quality_task.py):
letters in a word ~10% (answers "1 letters" / "11 letters"), items in a short list ~10%,
plural of a noun ~30%, "repeat the word" ~0%, "animal or fruit" 50% (always "fruit"),
one-digit addition phrased any other way than ``What is A + B?`` ~25%.

Splits: every item belongs to ``train``, ``dev`` or ``test`` for good, by the sha256 of its
*key* (the noun, the made-up word, the verb, the antonym pair or the pair of addends without
order), so no split shares a word (or a sum) with another; no seed is involved. Within a
split, items are ordered by the same hash and capped (:data:`CAPS`), so "the dev split" is
always the same items. Antonyms and sums are keyed without order so that "hot -> cold" and
"cold -> hot" (or "3 + 5" and "5 + 3") land in the same split: otherwise the test would be
answerable by memorising the reverse seen in training.

Checkers are hedge-proof: an answer must name exactly one candidate and it must be right.
Any second candidate ("C or K", "sad or sadness", "8 or 9"), an empty answer, or (for word
answers) any extra content word makes it wrong: negations are not parsed, so hedging never
pays, and a cut-off ramble usually fails too. The first-letter families reuse
``quality_task.check``; words use :func:`check_word`, sums :func:`answer_numbers`.

    python bench/focused_tasks.py                # sizes per split, checker self-test
    python bench/focused_tasks.py --show 3       # plus a few items of each family
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality_task  # noqa: E402

__all__ = ["FAMILIES", "SPLITS", "CAPS", "Family", "items", "check", "check_word",
           "answer_words", "answer_numbers", "past_tense"]

SPLITS = ("train", "dev", "test")
#: Items kept per split (first in hash order). ~400 train answers are the "few hundred
#: curated rows" a user brings; 150 dev/test items give a ~4-point standard error at 65%.
CAPS = {"train": 400, "dev": 150, "test": 150}


def _h(family: str, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"focused:{family}:{key}".encode()).digest()[:8],
                          "big")


def split_of(family: str, key: str) -> str:
    """``test`` for 2 in 10 keys, ``dev`` for 2 in 10, ``train`` for the rest."""
    r = _h(family, key) % 10
    return "test" if r < 2 else "dev" if r < 4 else "train"


# =============================================================================== checkers

#: Words a word answer may contain besides its one candidate: the teacher's template
#: ("The past tense of the verb "walk" is "walked".", "The opposite of "hot" is "cold".")
#: and answer prefixes. Anything else ("or", "in", "meaning"...) makes the answer wrong.
_FILLER = frozenset("""the a an of is it its it's word verb past tense form opposite antonym
    answer simple would be""".split())
_WORD = re.compile(r"[a-z]+(?:['\u2019-][a-z]+)*")


def answer_words(answer: str, asked: str, accepted: set[str] = frozenset()) -> set[str]:
    """The distinct content words of ``answer``: lower case, minus :data:`_FILLER` (unless
    accepted: "past" is the opposite of "future") and the word being asked about (echoing
    the question is fine, it is not a candidate)."""
    words = set(_WORD.findall(answer.lower().replace("\u2019", "'")))
    return {w for w in words if w not in _FILLER or w in accepted} - {asked.lower()}


def check_word(answer: str, asked: str, accepted: str) -> bool:
    """True when ``answer``'s only content word is one of ``accepted`` (``|``-separated).

    Right: ``walked``, ``Walked.``, ``**walked**``, ``The past tense of the verb "walk" is
    "walked".``. Wrong: an empty answer, the asked word alone (``"walk"``), two candidates
    (``"sad" or "sadness"``), or any extra content (``"false" in logic``)."""
    ok = set(accepted.split("|"))
    return len(words := answer_words(answer, asked, ok)) == 1 and words <= ok


# ============================================================================== families

@dataclass(frozen=True)
class Family:
    name: str
    prompt: str                                 # str.format template, field {q}
    pool: Callable[[], list[tuple[str, str, str]]]  # (key, asked, reference) for every item
    checker: Callable[[str, str, str], bool]    # (answer, asked, reference) -> right?
    what: str


def _letter_check(answer: str, asked: str, reference: str) -> bool:
    return quality_task.check(answer, reference)


# -- noun_letter ---------------------------------------------------------------------------

def _nouns() -> list[tuple[str, str, str]]:
    return [(w, w, w[0].upper()) for w in quality_task.WORDS]


# -- madeup_letter -------------------------------------------------------------------------

_ONSETS = {  # per first letter: how a made-up word may begin (English-like spellings)
    "a": ["a", "al", "am", "ar"], "b": ["b", "bl", "br"], "c": ["c", "cl", "cr"],
    "d": ["d", "dr"], "e": ["e", "el", "en"], "f": ["f", "fl", "fr"], "g": ["g", "gl", "gr"],
    "h": ["h"], "i": ["i", "im", "in"], "j": ["j"], "k": ["k", "kl"], "l": ["l"],
    "m": ["m"], "n": ["n"], "o": ["o", "ol", "om"], "p": ["p", "pl", "pr"], "q": ["qu"],
    "r": ["r"], "s": ["s", "sk", "sl", "sp", "st"], "t": ["t", "tr"], "u": ["u", "ul", "un"],
    "v": ["v"], "w": ["w"], "y": ["y"], "z": ["z"],
}
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ee", "oo", "ou"]
_MIDDLE = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "st", "nd",
           "rl", "sk"]
_CODAS = ["", "", "n", "r", "l", "t", "x", "sh", "m", "ck", "nd", "ve"]


def _madeup_words(n: int = 2600) -> list[str]:
    """``n`` made-up words, built from syllables picked by hashing an index (no seed):
    first letters cycle through the alphabet (no 'x'), so always answering one letter
    scores ~4%. Real nouns from quality_task.WORDS are skipped."""
    real = set(quality_task.WORDS)
    letters = sorted(_ONSETS)
    out: list[str] = []
    seen: set[str] = set()
    i = 0
    while len(out) < n:
        h = hashlib.sha256(f"madeup:{i}".encode()).digest()
        first = letters[i % len(letters)]
        onset = _ONSETS[first][h[0] % len(_ONSETS[first])]
        vowel = "" if onset[-1] in "aeiou" else _VOWELS[h[1] % len(_VOWELS)]
        word = onset + vowel + _MIDDLE[h[2] % len(_MIDDLE)] + \
            _VOWELS[h[3] % 5] + _CODAS[h[4] % len(_CODAS)]
        if h[5] % 3 == 0:  # a third get a third syllable
            word += _MIDDLE[h[6] % len(_MIDDLE)] + _VOWELS[h[7] % 5] + _CODAS[h[8] % 4]
        i += 1
        if word not in seen and word not in real and 4 <= len(word) <= 10:
            seen.add(word)
            out.append(word)
    return out


def _madeup() -> list[tuple[str, str, str]]:
    return [(w, w, w[0].upper()) for w in _madeup_words()]


# -- past_tense ----------------------------------------------------------------------------

#: Regular English verbs (no irregular or British/American doubling variants such as
#: travel/travelled, no learn/learnt).
VERBS: tuple[str, ...] = tuple(dict.fromkeys("""
    accept accuse achieve act add admire admit adopt advise afford agree aim allow amaze
    amuse annoy answer apologise appear applaud apply appreciate approve argue arrange arrest
    arrive ask attach attack attempt attend attract avoid back bake balance ban bang bathe
    battle beam beg behave belong bless blind blink blush boast boil bolt bomb book bore
    borrow bounce bow box brake branch breathe bruise brush bubble bump burst buzz calculate
    call camp care carry carve cause challenge change charge chase cheat check cheer chew
    chop claim clap clean clear clip close coach coil collect colour comb command communicate
    compare compete complain complete concentrate concern confess confuse connect consider
    consist contain continue copy correct cough count cover crack crash crawl cross crush
    cry cure curl curve cycle dam damage dance dare decay deceive decide decorate delay
    delight deliver depend describe desert deserve destroy detect develop disagree disappear
    discover dislike divide double doubt drag drain dress drip drop drown drum dry dust earn
    educate embarrass employ empty encourage end enjoy enter entertain escape examine excite
    excuse exercise exist expand expect explain explode extend face fade fail fancy fasten
    fax fear fence fetch file fill film fire fit fix flap flash float flood flow flower fold
    follow force form found frame frighten fry gather gaze glow glue grab grate grease greet
    grin grip groan guarantee guard guess guide hammer hand handle happen harass harm hate
    haunt head heal heap heat help hook hop hope hover hug hum hunt hurry identify ignore
    imagine impress improve include increase influence inform inject injure instruct intend
    interest interfere interrupt introduce invent invite irritate itch jail jam jog join joke
    judge juggle jump kick kill kiss kneel knit knock knot label land last laugh launch level
    license lick lie lighten like list listen live load lock long look love manage march
    mark marry match mate matter measure melt memorise mend milk mine miss mix moan moor
    mourn move mug multiply murder nail name need nest nod note notice number obey object
    observe obtain occur offend offer open order overflow owe own pack paddle paint park part
    pass paste pat pause peck pedal peel peep perform permit phone pick pinch pine place plan
    plant play please plug point poke polish pop possess post pour practise pray preach
    precede prefer prepare present preserve press pretend prevent prick print produce
    promise protect provide pull pump punch puncture punish push question queue race radiate
    rain raise reach realise receive recognise record reduce reflect refuse regret reign
    reject rejoice relax release rely remain remember remind remove repair repeat replace
    reply report reproduce request rescue retire return rhyme rinse risk rob rock roll rot rub
    ruin rule rush sack sail satisfy save saw scare scatter scold scorch scrape scratch scream
    screw scribble scrub seal search separate serve settle shade share shave shelter shiver
    shock shop shrug sigh sign signal sin sip ski skip slap slip slow smash smell smile smoke
    snatch sneeze sniff snore snow soak soothe sound spare spark sparkle spell spill spoil
    spot spray sprout squash squeak squeal squeeze stain stamp stare start stay steer step
    stir stitch stop store strap strengthen stretch strip stroke stuff subtract succeed suck
    suffer suggest suit supply support suppose surprise surround suspect suspend switch talk
    tame tap taste tease telephone tempt terrify test thank thaw tick tickle tie time tip
    tire touch tour tow trace trade train transport trap tremble trick trip trot trouble
    trust try tug tumble turn twist type undress unfasten unite unlock unpack untidy use
    vanish visit wail wait walk wander want warm warn wash waste watch water wave weigh
    welcome whine whip whirl whisper whistle wink wipe wish wobble wonder work worry wrap
    wreck wrestle wriggle yawn yell zip zoom
    adjust alert alter amend arm assist assume attach audit bail bark bash beep bend blame
    blast blend blur boost bother brief broil budge bundle burp calm cancel chain chant
    chat chill choke circle clash climb clog coax coast crave cram croak crop cruise
    cuddle dab dash deny dent depart dip dock dodge donate doze drift drill dunk dwell
    edit elect email enrol erase evolve exhale expire fan farm fetch fib fizz flip flirt
    flock flush fret fuss gasp giggle gobble gossip grill growl grunt gulp gush hail hatch
    honk howl hurl inhale jab jingle kayak knead lament lean leap limp linger loan lurk mash
    mimic mop mutter nag nibble nudge nurse nuzzle ooze outline overlap pant paste pester
    pinch plod plot plunge pounce prance prod prowl puff purr quack quiz rake ram rattle rest
    rip roam roar rustle scan scoop scoot scowl scuff shuffle shun sketch skid slam slide
    slurp smirk snap sneak snip snooze sob spin splash sponge sprint squint stack stalk steam
    stomp strum stumble sulk sway swirl tackle tag tangle thrash throb thump tiptoe toast
    topple toss trudge tuck twirl vote waddle wag weep wheeze whack wiggle yank yelp zap
""".split()))

#: Verbs above whose past tense is irregular or varies by dialect: left out of the family.
_NOT_REGULAR = frozenset("""bend burst dwell kneel leap lie mine saw sin smell spell spill
    spin slide sneak weep cancel label level signal pedal fib mimic lean found fit knit
    quiz spoil untidy enrol""".split())
#: Two-syllable verbs stressed on the last syllable, which double their final consonant.
_DOUBLE = frozenset("admit occur permit prefer regret overlap".split())
#: British spellings in VERBS: the American past tense is accepted too.
_US = {"apologise": "apologize", "memorise": "memorize", "realise": "realize",
       "recognise": "recognize", "practise": "practice", "colour": "color"}


def past_tense(verb: str) -> str:
    """The regular past tense: +d after e, y -> ied after a consonant, a doubled final
    consonant after one short vowel in a one-syllable verb (stop -> stopped) or in
    :data:`_DOUBLE`, else +ed."""
    if verb.endswith("e"):
        return verb + "d"
    if verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ied"
    one_syllable = len(re.findall(r"[aeiou]+", verb)) == 1
    cvc = re.search(r"(?:^|[^aeiou])[aeiou][^aeiouwxy]$", verb) is not None
    if cvc and (one_syllable or verb in _DOUBLE):
        return verb + verb[-1] + "ed"
    return verb + "ed"


def _verbs() -> list[tuple[str, str, str]]:
    return [(v, v, past_tense(v) + (f"|{past_tense(_US[v])}" if v in _US else ""))
            for v in VERBS if v not in _NOT_REGULAR]


# -- antonym -------------------------------------------------------------------------------

#: ``left right``; ``a|b`` lists other accepted answers (the first word is the one asked).
#: Both directions become items; the unordered pair is the split key.
ANTONYMS = """
    hot|warm cold|cool  big|large small|little|tiny  fast|quick slow  up down  happy sad|unhappy
    old|aged young|new  light|bright dark  wet|damp dry  early late  strong weak  open closed|shut
    full empty  hard soft|easy  rich|wealthy poor  loud|noisy quiet|silent  tall short  thick thin
    long short  clean dirty  true false  left right  inside|in outside|out  before after  buy sell
    win lose  love hate  begin|start end|finish|stop  push pull  above over|below|under
    day night  north south  east west  front back  cheap expensive|costly  safe dangerous|unsafe
    asleep awake  sweet sour|bitter  high low  good bad  yes no  on off  top bottom
    first last  always never  come go  give take  question answer  laugh cry  remember forget
    friend enemy  heavy light  wide|broad narrow  deep shallow  happy sad  male female
    alive dead  arrive leave|depart  accept reject|refuse  add subtract|remove  agree disagree
    ancient modern  asleep awake  attack defend  beautiful ugly  brave cowardly|scared
    calm nervous|anxious|stormy  careful careless  clever|smart stupid|dumb  close|near far
    correct wrong|incorrect  dangerous safe  difficult|hard easy|simple  entrance exit
    even odd  everything nothing  fat thin|skinny  fix break  floor ceiling  forward backward
    found lost  fresh stale|rotten  friendly unfriendly|hostile  full hungry  funny serious
    gentle rough|harsh  giant dwarf|tiny  guilty innocent  happy sad  healthy sick|ill|unhealthy
    heaven hell  hero villain  horizontal vertical  include exclude  increase decrease
    kind cruel|unkind  king queen  lazy hardworking|busy|active  lead follow  less more
    like dislike  loose tight  lost found  major minor  maximum minimum  messy tidy|neat
    morning evening|night  mother father  import export  inner outer  input output
    interesting boring|dull  question answer  join leave|separate  noisy quiet  obey disobey
    often rarely|seldom  optimist pessimist  order chaos|disorder  past future|present
    patient impatient  peace war  plus minus  polite rude|impolite  positive negative
    possible impossible  private public  proud ashamed|humble  pretty ugly  raise lower
    rapid slow  real fake|unreal  receive send|give  rough smooth  sharp dull|blunt
    sink float  sit stand  smooth rough  sober drunk  solid liquid  sell buy  sick healthy|well
    single married|double  sunny cloudy|rainy  sunrise sunset  teacher student|pupil
    tame wild  tidy messy|untidy  tight loose  together apart|separate  tough tender|weak|soft
    transparent opaque  truth lie  upstairs downstairs  useful useless  vacant occupied|full
    victory defeat  visible invisible  warm cool|cold  wise foolish|stupid  whisper shout|yell
    winter summer  boy girl  brother sister  husband wife  son daughter  uncle aunt
    nephew niece  man woman  day night  white black  black white  sky ground|earth
    land sea|water  city country|village  dawn dusk  noon midnight  spring autumn|fall
    heat cold  fire water|ice  sun moon  awake asleep  alive dead  wet dry  rich poor
    smile frown  accept decline|reject  allow forbid|prohibit|deny  appear disappear|vanish
    borrow lend  build destroy|demolish  catch throw|drop|release  connect disconnect
    create destroy  descend ascend|climb  dirty clean  enter exit|leave  expand shrink|contract
    fill empty  gain lose  hide seek|show|reveal  hire fire  ignore notice|acknowledge
    lend borrow  lock unlock  lift drop|lower  melt freeze  minimise maximise
    multiply divide  pass fail  praise criticise|blame|insult  save spend|waste  shrink grow|expand
    spend save  succeed fail  teach learn  tie untie  wake sleep  wax wane  arrival departure
    absent present  abundant scarce  accurate inaccurate  active passive|inactive
    advance retreat  approve disapprove  artificial natural  asset liability  bold timid|shy
    blunt sharp  cautious reckless|careless  cheerful gloomy|sad  complex simple
    compulsory optional|voluntary  conceal reveal|show  cruel kind  damp dry  dull bright|sharp
    eager reluctant|unwilling  fertile barren|infertile  flexible rigid|stiff  frequent rare
    generous stingy|selfish|mean  graceful clumsy  humble proud|arrogant  ill well|healthy
    juvenile adult  legal illegal  mature immature  narrow wide|broad  natural artificial
    obvious hidden|obscure  permanent temporary  plural singular  punish reward  raw cooked
    reveal hide|conceal  rigid flexible  shallow deep  shy outgoing|bold|confident
    simple complex|complicated  sour sweet  strict lenient  superior inferior
    thick thin  timid bold|brave  vertical horizontal  voluntary compulsory|forced
    wild tame  wrong right|correct  awake asleep  obedient disobedient  employed unemployed
    familiar strange|unfamiliar  fiction nonfiction|fact  ordinary extraordinary|special
    optimistic pessimistic  domestic foreign|wild  urban rural  visible invisible
    majority minority  maximum minimum  import export  increase decrease
"""


def _antonym_entries() -> list[list[str]]:
    """:data:`ANTONYMS` as ``[left, right]`` entries (entries are separated by two spaces or
    a line break)."""
    return [e.split() for e in re.split(r"\s{2,}|\n", ANTONYMS) if e.strip()]


def _antonym_pairs() -> list[tuple[str, str]]:
    """Unique unordered pairs from :data:`ANTONYMS` (duplicates in the text are dropped)."""
    seen: set[frozenset] = set()
    out = []
    for a, b in _antonym_entries():
        key = frozenset((a.split("|")[0], b.split("|")[0]))
        if key not in seen:
            seen.add(key)
            out.append((a, b))
    return out


def _antonyms() -> list[tuple[str, str, str]]:
    pairs = _antonym_pairs()
    # every answer a word may take across all its pairs ("light": "dark" and "heavy")
    accepts: dict[str, set[str]] = {}
    for a, b in pairs:
        a0, b0 = a.split("|")[0], b.split("|")[0]
        accepts.setdefault(a0, set()).update(b.split("|"))
        accepts.setdefault(b0, set()).update(a.split("|"))
    out: dict[str, tuple[str, str, str]] = {}
    for a, b in pairs:
        a0, b0 = a.split("|")[0], b.split("|")[0]
        key = "/".join(sorted((a0, b0)))
        for asked in (a0, b0):
            # a word asked twice (from two pairs) is one item: key it by the first pair
            out.setdefault(asked, (key, asked, "|".join(sorted(accepts[asked]))))
    return list(out.values())


# -- addition ------------------------------------------------------------------------------

def _sums() -> list[tuple[str, str, str]]:
    """Every one-digit sum; "3 + 5" and "5 + 3" share a key, hence a split."""
    return [(f"{min(a, b)}+{max(a, b)}", f"{a} + {b}", str(a + b))
            for a in range(10) for b in range(10)]


_NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty".split())}


def answer_numbers(answer: str, asked: str) -> set[int]:
    """The distinct numbers ``answer`` names, digits or words, once the question's own
    expression ("3 + 5", "3 plus 5", "3 and 5") is taken out: echoing it is not an answer."""
    a, b = asked.split(" + ")
    text = answer.lower()
    for x, y in ((a, b), (b, a)):
        text = re.sub(rf"(?<!\d){x}\s*(?:\+|plus|and)\s*{y}(?!\d)", " ", text)
    nums = {int(n) for n in re.findall(r"\d+(?:\.\d+)?", text) if "." not in n}
    nums |= {_NUMBER_WORDS[w] for w in re.findall(r"[a-z]+", text) if w in _NUMBER_WORDS}
    return nums | ({-1} if re.search(r"\d\.\d", text) else set())


def _sum_check(answer: str, asked: str, reference: str) -> bool:
    return answer_numbers(answer, asked) == {int(reference)}


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("noun_letter",
           'What is the first letter of the word "{q}"? Answer with just the letter.',
           _nouns, _letter_check, "first letter of a common noun"),
    Family("madeup_letter",
           'What is the first letter of the word "{q}"? Answer with just the letter.',
           _madeup, _letter_check, "first letter of a made-up word"),
    Family("past_tense",
           'What is the past tense of the verb "{q}"? Answer with just the word.',
           _verbs, lambda a, q, r: check_word(a, q, r), "past tense of a regular verb"),
    Family("antonym",
           'What is the opposite of "{q}"? Answer with just the word.',
           _antonyms, lambda a, q, r: check_word(a, q, r), "opposite of a common word"),
    Family("addition", "What is {q}? Answer with just the number.", _sums, _sum_check,
           "sum of two one-digit numbers"),
)}


def items(family: str, split: str) -> list[dict]:
    """The items of ``split``: ``{"id", "prompt", "reference", "asked"}``, in hash order,
    at most ``CAPS[split]`` of them; the same list on every call and machine."""
    fam = FAMILIES[family]
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    chosen = [(k, q, r) for k, q, r in fam.pool() if split_of(family, k) == split]
    chosen.sort(key=lambda t: (_h(family, t[0]), t[1]))
    return [{"id": f"{family}-{split}-{q}", "prompt": fam.prompt.format(q=q),
             "reference": r, "asked": q} for k, q, r in chosen[:CAPS[split]]]


def check(family: str, answer: str | None, item: dict) -> bool:
    """Grade one answer to ``item``; ``None`` or empty is wrong."""
    if not answer or not answer.strip():
        return False
    return FAMILIES[family].checker(answer, item["asked"], item["reference"])


#: ``(family, answer, asked, reference, expected)``: the word checkers' contract.
CHECK_EXAMPLES = (
    ("past_tense", 'The past tense of the verb "walk" is "walked."', "walk", "walked", True),
    ("past_tense", "walked", "walk", "walked", True),
    ("past_tense", "**Walked**", "walk", "walked", True),
    ("past_tense", 'The past tense of the verb "walk" is "walk".', "walk", "walked", False),
    ("past_tense", '"walked" or "walkt"', "walk", "walked", False),
    ("past_tense", "walked, walking", "walk", "walked", False),
    ("past_tense", "", "walk", "walked", False),
    ("antonym", 'The opposite of "hot" is "cold."', "hot", "cold|cool", True),
    ("antonym", "The opposite of love is hate.", "love", "hate", True),
    ("antonym", "Cool", "hot", "cold|cool", True),
    ("antonym", 'The opposite of "happy" is "sad" or "sadness."', "happy", "sad", False),
    ("antonym", 'The opposite of "true" is "false" in logic.', "true", "false", False),
    ("antonym", "cold and cool", "hot", "cold|cool", False),
    ("antonym", 'The opposite of "future" is "past."', "future", "past", True),
    ("noun_letter", 'The first letter of the word "cat" is "C".', "cat", "C", True),
    ("noun_letter", '"C" or "K"', "cat", "C", False),
    ("madeup_letter", "", "blorvic", "B", False),
    ("addition", "3 + 5 = 8", "3 + 5", "8", True),
    ("addition", "The sum of 3 and 5 is 8.", "3 + 5", "8", True),
    ("addition", "The answer is eight.", "3 + 5", "8", True),
    ("addition", "8", "3 + 5", "8", True),
    ("addition", "3 + 5 = 7 + 1 = 8", "3 + 5", "8", False),
    ("addition", "8 or 9", "3 + 5", "8", False),
    ("addition", "8.5", "3 + 5", "8", False),
    ("addition", "The answer is 1.", "3 + 5", "8", False),
    ("addition", "5 + 3", "3 + 5", "8", False),
)


def self_check() -> None:
    bad = [e for e in CHECK_EXAMPLES if check(e[0], e[1], {"asked": e[2], "reference": e[3]})
           != e[4]]
    if bad:
        raise SystemExit(f"checker disagrees with CHECK_EXAMPLES: {bad}")
    wrong = {v: past_tense(v) for v, want in (("stop", "stopped"), ("visit", "visited"),
                                              ("cry", "cried"), ("play", "played"),
                                              ("bake", "baked"), ("prefer", "preferred"),
                                              ("fix", "fixed"), ("rain", "rained"),
                                              ("open", "opened"), ("blur", "blurred"),
                                              ("chat", "chatted"), ("answer", "answered"))
             if past_tense(v) != want}
    if wrong:
        raise SystemExit(f"past_tense() is wrong for {wrong}")
    if any(len(e) != 2 for e in _antonym_entries()):
        raise SystemExit("ANTONYMS: every entry must be two words (a|b alternatives)")
    for fam in FAMILIES:
        ids = [{it["asked"] for it in items(fam, s)} for s in SPLITS]
        if ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2]:
            raise SystemExit(f"{fam}: splits share an asked word")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--show", type=int, default=0, help="items of each family to print")
    a = ap.parse_args(argv)
    self_check()
    for name, fam in FAMILIES.items():
        sizes = {s: len(items(name, s)) for s in SPLITS}
        pool = {s: sum(split_of(name, k) == s for k, _, _ in fam.pool()) for s in SPLITS}
        print(f"{name:14} {fam.what:32} " + "  ".join(
            f"{s} {sizes[s]}/{pool[s]}" for s in SPLITS))
        for it in items(name, "train")[:a.show]:
            print(f"    {it['prompt']}  ->  {it['reference']}")
    print("checker self-test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
