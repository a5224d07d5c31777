"""Self-Instruct's pool filter: synth's MinHash-pre-filtered ROUGE-L check vs the paper's
way, same tasks, one run.

    python bench/self_instruct_pool.py               # 175 seeds + 825 proposals (~2 min)
    python bench/self_instruct_pool.py --n 1825      # 2,000 tasks (the paper's way is
                                                     # quadratic: ~7 min on a 2-core VM)
    python bench/self_instruct_pool.py --n 9825 --no-paper   # 10,000 tasks, synth only

The filter: a proposed task joins the pool (seeds + tasks kept so far, including those kept
earlier in the same run) only if its ROUGE-L F against every pool task is <= 0.7.

* paper: what Self-Instruct's ``bootstrap_instructions.py`` does for each proposal:
  ``rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False).score(new, task)`` against
  every pool task (it spreads that map over a ``multiprocessing.Pool(4)``; here it runs in
  one process, as synth does), then ``max(...) > 0.7``.
* alpaca: Stanford Alpaca's variant of the same check: each task tokenised once, then
  ``rouge_scorer._score_lcs`` against every pool task (rouge-score's own LCS table).
* synth: :class:`synth.recipes.text.RougePool`: MinHash-LSH candidates over
  occurrence-tagged tokens (158 bands x 4 rows, chosen so a pair at the bound is missed with
  probability < 1e-6), then exact ROUGE-L (bit-parallel LCS) on the candidates only.
* synth-brute: the same pool with the pre-filter off (every pair, bit-parallel LCS): how
  much of the gain is the LCS and how much the pre-filter.

Tasks (deterministic, ``--seed``): instructions built from ~40 task shapes (write / explain
/ list / compare / classify / rewrite / questions...), ~200 topics, audiences, tones and
length constraints; 30% of the proposals are rewrites of an earlier task (a word or a
constraint swapped, added or removed, the order of clauses changed), the near-duplicates the
filter exists for. Every approach sees the same seeds and proposals in the same order;
the bench checks that they keep exactly the same tasks (and drop each for the same pool
task at the same score).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

_SUBJECTS = """photosynthesis;the French Revolution;machine learning;climate change;the stock
market;quantum computing;the human immune system;renewable energy;the Roman Empire;
blockchain technology;social media;the water cycle;plate tectonics;the Cold War;
artificial intelligence;the theory of evolution;black holes;the Industrial Revolution;
vaccines;inflation;the printing press;electric cars;the internet;volcanoes;jazz music;
the Renaissance;coral reefs;remote work;meditation;the Olympic Games;antibiotics;
cryptography;urban gardening;the Great Depression;time management;public speaking;
nuclear power;the moon landing;honeybees;recycling;democracy;supply chains;sleep;
the periodic table;rainforests;the Silk Road;video game design;personal finance;
3D printing;the human brain;ocean currents;ancient Egypt;self-driving cars;minimalism;
the immune response to allergies;solar panels;chess strategy;the history of coffee;
microplastics;space tourism;the Byzantine Empire;gene editing;composting;earthquakes;
the gig economy;classical music;online privacy;the Maya civilisation;wind turbines;
dinosaurs;marathon training;the placebo effect;credit scores;glaciers;baking bread;
the Apollo program;bird migration;interest rates;the Mongol Empire;cloud computing;
tea ceremonies;desert ecosystems;the Harlem Renaissance;language learning;tides;
mushrooms;open-source software;the Suez Canal;electric guitars;fermentation;
the Hubble telescope;urban planning;sea turtles;the gold standard;origami;
the Krebs cycle;wildfires;the Byzantine generals problem;typography;hurricanes;
ancient Greek theatre;lithium batteries;the Dust Bowl;sourdough starters;tsunamis;
the Enlightenment;carbon taxes;the human microbiome;skateboarding;the Amazon river;
the Manhattan Project;board games;the Great Barrier Reef;data compression;
the Hanseatic League;bonsai trees;the Fibonacci sequence;noise pollution;
the Ottoman Empire;solar eclipses;peer review;wolves in Yellowstone;the metric system;
podcasts;the Treaty of Versailles;fusion energy;street food;the Pythagorean theorem;
monsoons;the Voyager probes;impressionist painting;food deserts;the Aztec calendar;
sign language;hydroponics;the Berlin Wall;password managers;the Sahara desert;
knitting;the Big Bang;fair trade;the Panama Canal;octopuses;the Bronze Age;
electric grids;the history of chocolate;whale songs;crowdfunding;the Magna Carta;
permafrost;the blues;containers and Docker;the Black Death;kombucha;tornadoes;
the Wright brothers;mindfulness apps;the Dead Sea Scrolls;cybersecurity;
the Irish potato famine;hot air balloons;the Hippocratic oath;dark matter;
the Phoenicians;minimum wage laws;the Tour de France;sunscreen;the Rosetta Stone;
antimatter;the silk industry;carbon capture;the Vikings;pollinators;radio astronomy;
the Salem witch trials;smart homes;the Andes mountains;stand-up comedy;
the history of the bicycle;desalination;the Meiji Restoration;ant colonies""".replace(
    "\n", " ").split(";")

_AUDIENCES = ["a ten-year-old", "a high-school student", "a busy manager", "a retiree",
              "a software engineer", "a first-year university student", "a tourist",
              "a small-business owner", "a nurse", "a farmer", "a journalist",
              "an investor", "a new parent", "a museum visitor"]
_TONES = ["a formal tone", "a humorous tone", "a friendly tone", "plain language",
          "a persuasive tone", "an optimistic tone", "a neutral tone", "vivid imagery"]
_LIMITS = ["in under 100 words", "in exactly three sentences", "in one paragraph",
           "in no more than 50 words", "as a numbered list", "as a bulleted list",
           "in five bullet points", "in two short paragraphs", "as a table",
           "in a single sentence"]
_FORMS = ["a short poem", "a haiku", "a limerick", "a blog post", "a tweet",
          "a product description", "a news headline", "a short story", "a dialogue",
          "a speech", "an email to a colleague", "a riddle", "a song chorus",
          "a cover letter opening", "a movie pitch", "a quiz with three questions"]
_ITEMS = ["fruits", "animals", "countries", "programming languages", "musical instruments",
          "sports", "vegetables", "planets", "rivers", "painters", "cities", "metals"]


def _shapes(rng: random.Random) -> str:
    s, s2 = rng.choice(_SUBJECTS).strip(), rng.choice(_SUBJECTS).strip()
    aud, tone, lim, form = (rng.choice(_AUDIENCES), rng.choice(_TONES), rng.choice(_LIMITS),
                            rng.choice(_FORMS))
    items = rng.choice(_ITEMS)
    n = rng.choice(["three", "four", "five", "six", "seven", "ten"])
    shapes = [
        f"Write {form} about {s}.",
        f"Write {form} about {s} using {tone}.",
        f"Explain {s} to {aud} {lim}.",
        f"Explain how {s} works, using {tone}.",
        f"Summarize the main ideas behind {s} {lim}.",
        f"List {n} surprising facts about {s}.",
        f"List {n} common misconceptions about {s} and correct each one.",
        f"Compare {s} and {s2}, focusing on their similarities and differences.",
        f"What are the main causes and effects of {s}?",
        f"How has {s} changed over the last hundred years?",
        f"Why is {s} important for {aud}?",
        f"Describe a typical day of someone who studies {s}.",
        f"Give {n} tips for {aud} who wants to learn about {s}.",
        f"Suggest {n} questions a teacher could ask about {s}.",
        f"Create a lesson plan on {s} for {aud}.",
        f"Write a persuasive argument for investing more money in {s}.",
        f"Outline the history of {s} {lim}.",
        f"Propose a research question connecting {s} and {s2}.",
        f"Classify the following {items} by their first letter: "
        f"{', '.join(rng.sample(['apple', 'mango', 'kiwi', 'pear', 'plum', 'lime', 'fig'], 3))}.",
        f"Sort these {items} from smallest to largest and explain your reasoning.",
        f"Rewrite the following sentence about {s} so that it sounds more {rng.choice(['formal', 'casual', 'polite', 'exciting'])}: "
        f"'{s.capitalize()} is {rng.choice(['interesting', 'hard to understand', 'often ignored', 'changing fast'])}.'",
        f"Translate a short description of {s} into simple English for {aud}.",
        f"Identify the logical fallacy in this claim: '{s.capitalize()} is bad because "
        f"{rng.choice(['everyone says so', 'it is new', 'my uncle dislikes it', 'it is old'])}.'",
        f"Is {s} more relevant to {aud} or to {rng.choice(_AUDIENCES)}? Justify your answer.",
        f"Draft a short interview with an expert on {s}, with {n} questions and answers.",
        f"Generate a catchy slogan for a campaign about {s}.",
        f"Pretend you are a tour guide and describe {s} to {aud}.",
        f"Write a recipe-style set of instructions for understanding {s}.",
        f"What would happen if {s} suddenly disappeared? Answer {lim}.",
        f"Give a step-by-step explanation of {s} for {aud}, using {tone}.",
        f"Name {n} famous people associated with {s} and say why each matters.",
        f"Create a multiple-choice question about {s} with four options.",
        f"Write a diary entry from the point of view of someone affected by {s}.",
        f"Evaluate the pros and cons of {s} {lim}.",
        f"Describe {s} using only words of one syllable.",
        f"Find the odd one out among these {items} and explain why.",
        f"Summarize a debate between two people who disagree about {s}.",
        f"Write {form} that teaches {aud} about {s}, {lim}.",
        f"Turn the key facts about {s} into {form}.",
        f"Plan a weekend trip themed around {s} for {aud}.",
    ]
    task = rng.choice(shapes)
    if rng.random() < 0.6:  # a second clause, as real instructions often have
        x = rng.choice(_SUBJECTS).strip()
        task += " " + rng.choice([
            f"Mention at least one link to {x}.",
            f"End with a question for {aud}.",
            f"Avoid technical jargon and use {tone}.",
            f"Include one real example from {x}.",
            f"Then suggest {n} further readings.",
            f"Make sure it would interest {aud}.",
            f"Do not mention {x}.",
            "Start with a surprising statistic.",
            "Finish with a one-line summary.",
            f"Use the word '{rng.choice(['bright', 'hidden', 'simple', 'future', 'old'])}' at least twice.",
            f"Keep it suitable for {aud}.",
            "Add a short title in capital letters.",
            f"Imagine the year is {rng.randint(1500, 2300)}.",
            f"Write it {lim}.",
            "Explain your reasoning step by step.",
            f"Use an analogy from {x}.",
        ])
    return task


_SWAPS = {"Write": "Compose", "Explain": "Describe", "List": "Give", "short": "brief",
          "main": "key", "common": "frequent", "important": "essential", "famous": "well-known",
          "tips": "pieces of advice", "Create": "Design", "Give": "Provide"}


def _rewrite(task: str, rng: random.Random) -> str:
    """A near-duplicate of ``task``: one to three small edits."""
    out = task.rstrip(".?")
    for _ in range(rng.randint(1, 3)):
        k = rng.randrange(5)
        words = out.split()
        if k == 0 and len(words) > 4:  # swap a word for a synonym or another word
            i = rng.randrange(len(words))
            words[i] = _SWAPS.get(words[i], rng.choice(["really", "clearly", "briefly",
                                                        "carefully", "simply"]))
        elif k == 1:  # add a constraint
            words += rng.choice([["in", "simple", "terms"], ["for", rng.choice(_AUDIENCES)],
                                 rng.choice(_LIMITS).split(), ["with", "examples"]])
        elif k == 2 and len(words) > 6:  # drop a few words
            i = rng.randrange(len(words) - 2)
            del words[i:i + rng.randint(1, 2)]
        elif k == 3:  # change the topic (keeps the shape)
            words += ["and", "its", "link", "to", rng.choice(_SUBJECTS).strip()]
        else:  # reorder two halves
            h = len(words) // 2
            words = words[h:] + words[:h]
            words[0] = words[0].capitalize()
        out = " ".join(words)
    return out + rng.choice([".", "?", "."])


def make_tasks(n_seeds: int, n_proposals: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """(seed tasks, proposals), deterministic in ``seed``."""
    rng = random.Random(f"self-instruct-bench:{seed}")
    seeds = [_shapes(rng) for _ in range(n_seeds)]
    props: list[str] = []
    for _ in range(n_proposals):
        pool = seeds + props
        props.append(_rewrite(rng.choice(pool), rng) if rng.random() < 0.3
                     else _shapes(rng))
    return seeds, props


# ------------------------------------------------------------------------ the approaches


def paper_way(seeds: list[str], props: list[str], threshold: float):
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    pool = list(seeds)
    ids = [f"s{i}" for i in range(len(seeds))]
    kept, dropped = [], {}
    for j, inst in enumerate(props):
        scores = [scorer.score(inst, t)["rougeL"].fmeasure for t in pool]
        best = max(scores)
        if best > threshold:
            dropped[j] = (scores.index(best), best)
            continue
        pool.append(inst)
        ids.append(f"p{j}")
        kept.append(j)
    return kept, dropped


def alpaca_way(seeds: list[str], props: list[str], threshold: float):
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    pool = [scorer._tokenizer.tokenize(t) for t in seeds]
    kept, dropped = [], {}
    for j, inst in enumerate(props):
        toks = scorer._tokenizer.tokenize(inst)
        scores = [rouge_scorer._score_lcs(toks, t).fmeasure for t in pool]
        best = max(scores)
        if best > threshold:
            dropped[j] = (scores.index(best), best)
            continue
        pool.append(toks)
        kept.append(j)
    return kept, dropped


def synth_way(seeds: list[str], props: list[str], threshold: float, prefilter: bool = True):
    from synth.recipes.text import RougePool, rouge_tokens

    pool = RougePool(threshold, seed=0, prefilter=prefilter)
    toks = [rouge_tokens(t) for t in seeds + props]
    sigs = pool.signatures(toks)
    for i, t in enumerate(seeds):
        pool.add(f"s{i}", t, tokens=toks[i], sig=sigs[i])
    kept, dropped = [], {}
    base = len(seeds)
    for j, inst in enumerate(props):
        hit = pool.match(inst, tokens=toks[base + j], sig=sigs[base + j])
        if hit is not None:
            dropped[j] = (hit.index, hit.score)
            continue
        pool.add(f"p{j}", inst, tokens=toks[base + j], sig=sigs[base + j])
        kept.append(j)
    return kept, dropped, pool


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=175, help="seed tasks (the paper: 175)")
    ap.add_argument("--n", type=int, default=825, help="proposed tasks, checked in order")
    ap.add_argument("--threshold", type=float, default=0.7)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-paper", action="store_true", help="skip the paper's way")
    ap.add_argument("--alpaca", action="store_true", help="also run Alpaca's variant")
    a = ap.parse_args(argv)

    t0 = time.perf_counter()
    seeds, props = make_tasks(a.seeds, a.n, a.seed)
    print(f"tasks: {len(seeds)} seeds + {len(props)} proposals "
          f"({sum(len(t.split()) for t in seeds + props) / (len(seeds) + len(props)):.1f} "
          f"words on average; made in {time.perf_counter() - t0:.2f}s)")

    t = time.perf_counter()
    kept_s, drop_s, pool = synth_way(seeds, props, a.threshold)
    t_synth = time.perf_counter() - t
    print(f"synth       : {t_synth:8.2f}s  kept {len(kept_s)}, dropped {len(drop_s)}; "
          f"pairs {pool.pairs:,}, LSH candidates {pool.candidates:,} "
          f"({pool.candidates / max(pool.pairs, 1):.2%}), ROUGE-L computed {pool.scored:,}; "
          f"{pool.lsh['bands']} bands x {pool.lsh['rows']} rows, miss probability at "
          f"J={pool.lsh['jaccard_bound']}: {pool.lsh['miss_probability_at_bound']:.1e}")

    t = time.perf_counter()
    kept_b, drop_b, bpool = synth_way(seeds, props, a.threshold, prefilter=False)
    t_brute = time.perf_counter() - t
    print(f"synth-brute : {t_brute:8.2f}s  kept {len(kept_b)}; ROUGE-L computed "
          f"{bpool.scored:,} of {bpool.pairs:,} pairs (length bound skips the rest)")
    same = kept_b == kept_s and drop_b == drop_s
    print(f"  synth == synth-brute (kept and drops): {same}")

    ok = same
    if a.alpaca:
        t = time.perf_counter()
        kept_a, drop_a = alpaca_way(seeds, props, a.threshold)
        t_alp = time.perf_counter() - t
        same_a = kept_a == kept_s and drop_a == drop_s
        ok &= same_a
        print(f"alpaca      : {t_alp:8.2f}s  kept {len(kept_a)}; same kept tasks and drops "
              f"as synth: {same_a}; alpaca / synth = {t_alp / t_synth:.1f}x")
    if not a.no_paper:
        t = time.perf_counter()
        kept_p, drop_p = paper_way(seeds, props, a.threshold)
        t_pap = time.perf_counter() - t
        same_p = kept_p == kept_s and drop_p == drop_s
        ok &= same_p
        print(f"paper       : {t_pap:8.2f}s  kept {len(kept_p)}; same kept tasks and drops "
              f"as synth: {same_p}; {t_pap / pool.pairs * 1e6:.0f} µs a pair")
        print(f"paper / synth = {t_pap / t_synth:.1f}x   (synth-brute: "
              f"{t_pap / t_brute:.1f}x; the pre-filter alone: {t_brute / t_synth:.1f}x)")
    print("identical results:", ok)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
