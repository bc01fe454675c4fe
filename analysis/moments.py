"""Moment selection: find the clip-worthy stretches of a long source, offline.

Input is a `SourceAnalysis` (timed words from an offline recognizer, plus optional VAD
speech, loudness, face presence, speaker turns and laughter/applause events); output is
`Moment`s, ranked best-first.

The recognizer is Whisper by default (punctuated, about 0.1 word error rate on clean
speech) or PocketSphinx (lowercase, unpunctuated, about 0.6). So sentences end at sentence
punctuation where there is some and at pauses always, and the prompt is matched with
stems, fuzzy spelling and phonetic codes as well as exact words.

Pipeline
--------
1. `candidates`: windows that start and end at pauses (a word gap >= PAUSE_SECONDS, or a
   VAD silence), their length inside `ProcessOptions.length_range`, inside trimStart/trimEnd. Sentences
   ("units") longer than min(max / 2, max - min) are split at their largest word gap, so
   that some run of units always fits the range, and
   every unit start is tried with up to MAX_ENDS_PER_START ends spread over the allowed
   lengths. A (trimmed) source shorter than the shortest clip is one candidate.
2. `score_candidates`: each signal below is a 0..1 value per window; they are combined
   with the genre's weights (GENRE_WEIGHTS), then mixed with the prompt match.
3. `select_moments`: greedy pick, best first, dropping any window that overlaps an already
   chosen one (clips may touch, never share a moment); an optional `rescore` hook
   (the LLM path) sees the top 3*N distinct windows before the final pick.

Signals (each 0..1)
-------------------
density   0.5 * min(1, words per second / 3) + 0.5 * min(1, speech ratio / 0.9); speech from
          the VAD segments, else from the words' own timings.
loudness  0.5 * clip((loudest sample - source median dBFS) / 12 dB) + 0.5 * min(1, share of
          samples >= median + 6 dB / 0.25). Relative to the source's own median.
events    laughter/applause inside the window or within 1.5 s after it (a laugh right after
          the punchline belongs to the clip): min(1, 0.35 * events + event seconds / 4).
qa        question/answer shape: a sentence opening with a question ("what", "why", "how do",
          "do you", ...) followed by an answer sentence (>= 5 words). Weight 1.0 when the answer
          comes from another speaker, 0.8 without diarization, 0.6 from the same speaker.
          A pair opening the window (question within its first 6 s) counts fully; pairs
          elsewhere inside count 0.6.
hook      hook lexicon (HOOK_PHRASES weight 1, HOOK_WORDS weight 0.4); hits in the first 6 s
          count double. Saturating: sat(x) = 1 - exp(-x / (k * sqrt(duration / 30))), k = 2.
numbers   numbers and lists: ordinals and list markers ("first", "step", "tip", "finally")
          1.0, "number"/"step" + a number 1.5, digits and number words 0.6 ("one" 0.3);
          sat with k = 3.
faces     mean face fraction of the samples inside the window (interpolated at its middle
          when none falls inside).
emotion   NRC emotion lexicon words per word of the window (a strong emotion word 1, an
          anticipation/trust-only word 0.3: `emotion_weight`): clip((rate - 0.05) / 0.25, 0, 1),
          so ordinary talk (~0.1) is near 0.2 and a passage a third emotional words is 1.
prompt    prompt + customInstructions (stopwords and instruction words like "focus",
          "moments" removed): per topic term, each word matches 1.0 exact, 0.9 same stem,
          0.7 same phonetic code (metaphone after "-ough/-augh" -> f, "igh" -> i; also two
          adjacent words heard for one, "higher ring" ~ "hiring"), 0.6 close spelling
          (Jaro-Winkler >= 0.9). Value = 0.35 * coverage (distinct terms present, weighted by
          rarity in the source) + 0.15 * sat(match weight, k = 1.5) + 0.35 * focus (share of
          the window's words in a sentence with a match; 0.5 next to one) + 0.15 * phrase
          (adjacent prompt terms found adjacent); a prompt without two-term phrases:
          0.4 coverage + 0.2 sat + 0.4 focus.

Style words in the prompt ("funny", "tips", "emotional", "questions", "hooks",
"energetic") are not topic terms: they multiply the matching signals' weights (INTENTS).

Signals with no input (no loudness, faces or events given; qa without words) are left out
and the remaining weights renormalised, so a missing detector neither helps nor hurts a
window. `Moment.signals` lists the signals that were computed ("prompt" whenever the prompt
has topic terms, 0 everywhere when none occurs in the source, which is then ignored), plus
"combined" (the 0..1 value the score is made from; an LLM rescore adds "llm").

Weights per genre (GENRE_WEIGHTS; each row sums to 1)
------------------------------------------------------
            density loudness events  qa   hook numbers faces emotion
podcast       .15     .08     .12   .18   .22    .07    .05    .13
interview     .15     .05     .08   .27   .18    .07    .07    .13
vlog          .10     .22     .15   .05   .12    .04    .20    .12
tutorial      .20     .04     .03   .10   .18    .35    .05    .05

"auto" uses `infer_genre`.

Combination and score
---------------------
base = sum(w_s * v_s) / sum(w_s) over the available signals. With a prompt whose terms
occur in the source: combined = 0.6 * prompt + 0.4 * base (the prompt dominates: a window
that does not mention the topic is capped at 0.4). Otherwise combined = base.
score = 10 * (1 - exp(-3 * combined)) / (1 - exp(-3)), rounded to 1 decimal: a fixed,
monotone, job-independent curve (0 -> 0, 0.1 -> 2.7, 0.3 -> 6.2, 0.5 -> 8.2, 0.7 -> 9.2,
1 -> 10), so scores compare across the clips of a job (and across jobs) and the ranking
is the same as by `combined`.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from itertools import pairwise

import jellyfish
import numpy as np

from analysis.speakers import Turn
from reelfarm.options import ProcessOptions
from reelfarm.transcript import Word

log = logging.getLogger(__name__)

PAUSE_SECONDS = 0.4  # a word gap at least this long ends a sentence
VAD_GAP_SECONDS = 0.15  # a shorter gap still ends one when the VAD saw silence inside it
EDGE_PAD = 0.15  # a clip starts/ends this far (at most half the gap) outside its words
OPENING_SECONDS = 6.0  # the "hook" part of a clip
MAX_ENDS_PER_START = 6
RESCORE_POOL_FACTOR = 3  # the rescore hook sees the top 3*N distinct windows
# Of the shorter window's length: 0, a job's clips never show the same moment twice.
MAX_OVERLAP = 0.0

SIGNALS = ("density", "loudness", "events", "qa", "hook", "numbers", "faces", "emotion")
GENRE_WEIGHTS: dict[str, dict[str, float]] = {
    "podcast": {"density": 0.15, "loudness": 0.08, "events": 0.12, "qa": 0.18, "hook": 0.22, "numbers": 0.07,
                "faces": 0.05, "emotion": 0.13},
    "interview": {"density": 0.15, "loudness": 0.05, "events": 0.08, "qa": 0.27, "hook": 0.18, "numbers": 0.07,
                  "faces": 0.07, "emotion": 0.13},
    "vlog": {"density": 0.10, "loudness": 0.22, "events": 0.15, "qa": 0.05, "hook": 0.12, "numbers": 0.04,
             "faces": 0.20, "emotion": 0.12},
    "tutorial": {"density": 0.20, "loudness": 0.04, "events": 0.03, "qa": 0.10, "hook": 0.18, "numbers": 0.35,
                 "faces": 0.05, "emotion": 0.05},
}  # fmt: skip
PROMPT_WEIGHT = 0.6
SCORE_CURVE = 3.0

def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


EMOTIONS = ("anger", "anticipation", "disgust", "fear", "joy", "sadness", "surprise", "trust")


@dataclass
class SourceAnalysis:
    duration: float
    words: list[Word]
    speech: list[tuple[float, float]] = ()  # VAD speech segments (source seconds)
    loudness: list[float] = ()  # dBFS per loudness_step seconds from t=0
    loudness_step: float = 0.5
    faces: list[tuple[float, float]] = ()  # (time, fraction of frames with a face near that time)
    turns: list[Turn] = ()  # speaker turns (diarization), may be empty
    events: list[tuple[float, float, str]] = ()  # (start, end, "laughter"|"applause"), may be empty
    language: str | None = None  # ISO 639-1 of the speech, when the transcriber said


@dataclass
class Moment:
    start: float
    end: float
    score: float  # 0..10, 1 decimal
    transcript: str  # the words inside, joined
    signals: dict[str, float] = field(default_factory=dict)  # each signal's 0..1 value


# ---------------------------------------------------------------------------------------
# Text helpers (shared with clip_metadata)
# ---------------------------------------------------------------------------------------

_TOKEN_DROP = re.compile(r"[^a-z0-9]+")

STOPWORDS = _words("""
a about above after again against all am an and any are aren't as at be because been before being below
between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down during each
few for from further had hadn't has hasn't have haven't having he he'd he'll he's her here here's hers herself
him himself his how how's i i'd i'll i'm i've if in into is isn't it it's its itself let's me more most
mustn't my myself no nor not of off on once only or other ought our ours ourselves out over own same shan't
she she'd she'll she's should shouldn't so some such than that that's the their theirs them themselves then
there there's these they they'd they'll they're they've this those through to too under until up very was
wasn't we we'd we'll we're we've were weren't what what's when when's where where's which while who who's
whom why why's with won't would wouldn't you you'd you'll you're you've your yours yourself yourselves
um uh uhm er ah oh hmm mm yeah yes okay ok like just really well right got get gonna wanna kind sort thing
things lot also even still much many way know mean think going go say said one also
""")
STOPWORDS = frozenset(_TOKEN_DROP.sub("", w) for w in STOPWORDS)
# Words that say what to do with the prompt rather than what it is about.
INSTRUCTION_WORDS = _words("""
focus focusing moment moments clip clips prioritize prioritise priority find pick choose select highlight
highlights segment segments part parts section sections show want make video videos talk talks talking
discuss discussion discusses discussing related topic topics mention mentions mentioned especially
interesting best good great include including please about around regarding where someone speaker speakers
people person content stuff bits bit
""")
INTENTS: dict[str, tuple[frozenset[str], dict[str, float]]] = {
    "funny": (_words("funny humor humour hilarious laugh laughs laughter laughing joke jokes comedy comedic "
                        "fun"), {"events": 3.0, "emotion": 1.5}),
    "emotion": (_words("emotional emotion emotions heartfelt touching sad inspiring inspirational "
                          "motivational moving"), {"emotion": 3.0}),
    "lists": (_words("tips tip steps lessons advice howto tutorial list lists numbers stats statistics "
                        "actionable"), {"numbers": 3.0}),
    "qa": (_words("questions question qa answers answer"), {"qa": 3.0}),
    "hook": (_words("hooks hook viral controversial spicy surprising shocking takes"), {"hook": 3.0}),
    "energy": (_words("energetic exciting loud hype intense action excited"),
               {"loudness": 3.0, "events": 1.5}),
}  # fmt: skip

HOOK_PHRASES = tuple(
    tuple(p.split())
    for p in (
        "the secret", "secret is", "nobody tells you", "no one tells you", "nobody talks about", "heres why",
        "here is why", "heres the thing", "here is the thing", "the truth is", "truth is", "you wont believe",
        "biggest mistake", "the mistake", "common mistake", "the problem is", "the real reason", "the reason why",
        "the key is", "the trick is", "most people", "most people dont", "i was wrong", "stop doing",
        "changed my life", "game changer", "let me tell you", "the thing is", "the crazy thing", "the craziest",
        "ill never forget", "it turns out", "turns out", "believe it or not", "did you know", "hard truth",
        "the one thing", "the worst", "the best part", "no one knows", "what nobody", "this is why",
        "thats why", "never do", "the number one", "the biggest", "i learned", "lesson i", "you need to know",
        "dont make", "big mistake", "the hardest", "plot twist", "unpopular opinion", "hot take",
    )
)  # fmt: skip
HOOK_WORDS = _words("""
secret secrets mistake mistakes truth shocking crazy insane wrong worst biggest nobody regret lesson
lessons hack trick warning dangerous honestly seriously unbelievable incredible surprising surprised
huge failed failure fail myth lie lied never
""")
HOOK_PHRASE_WEIGHT = 1.0
HOOK_WORD_WEIGHT = 0.4

_NUMBER_WORDS = _words("""
two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen
eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand million billion
trillion percent half double triple dozen
""")
_ORDINALS = _words("""
first second third fourth fifth sixth seventh eighth ninth tenth firstly secondly thirdly finally lastly
step steps tip tips rule rules reason reasons
""")
_COUNTABLE_MARKERS = frozenset({"number", "step", "tip", "rule", "reason", "lesson", "part"})

_QUESTION_WORDS = _words("what why how when where who which whats whos hows wheres whys")
_AUX = _words("do does did is are was were can could would will should have has had am isnt arent "
                 "dont doesnt didnt wouldnt couldnt")  # fmt: skip
_PRONOUNS = _words("you we they i it he she that this there your yourself")
_FILLERS = _words("so and but okay ok well um uh like now then yeah right alright oh hey")
_TUTORIAL_MARKERS = _words("""
step steps first second third next finally click select press type install open add drag tip tips
tutorial setup settings button menu option folder file enter download choose configure paste copy
""")
_TUTORIAL_PHRASES = (("make", "sure"), ("you", "need", "to"), ("lets", "start"), ("how", "to"), ("go", "to"))


def normalize_token(text: str) -> str:
    """Lowercase, apostrophes and punctuation dropped ("Here's" -> "heres")."""
    return _TOKEN_DROP.sub("", text.lower())


def tokens(text: str) -> list[str]:
    """Normalized tokens of free text."""
    return [t for t in (normalize_token(p) for p in text.split()) if t]


_SUFFIXES = ("ations", "ation", "ments", "ment", "ness", "ings", "ing", "ers", "ies", "ied", "ed", "er", "es",
             "ly", "s")  # fmt: skip


@lru_cache(maxsize=65536)
def stem(token: str) -> str:
    """A light suffix stemmer (hiring/hired/hires -> hir, startups -> startup, coffees -> coffe)."""
    word = token
    if len(word) > 4:
        for suffix in _SUFFIXES:
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                word = word[: -len(suffix)] + ("y" if suffix in ("ies", "ied") else "")
                break
        if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouls":
            word = word[:-1]  # running -> runn -> run
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


@lru_cache(maxsize=65536)
def phonetic(token: str) -> str:
    """Metaphone code, after spellings the recognizer and metaphone disagree on: final
    -ough/-augh sound like f (cough, laugh), igh is a long i (higher -> hier)."""
    if not token.isalpha():
        return ""
    word = re.sub(r"(ou|au)gh$", r"\1f", token)
    word = word.replace("igh", "i")
    return jellyfish.metaphone(word)


@lru_cache(maxsize=1)
def emotion_lexicon() -> dict[str, frozenset[str]]:
    """The NRC emotion lexicon shipped inside the nrclex package (word -> its emotions among
    EMOTIONS; positive/negative dropped). Read with importlib.resources: no downloads."""
    raw = json.loads(resources.files("nrclex.data").joinpath("nrc_en.json").read_text(encoding="utf-8"))
    lexicon = {}
    for word, affects in raw.items():
        emotions = frozenset(a for a in affects if a in EMOTIONS)
        if emotions:
            lexicon[normalize_token(word)] = emotions
    return lexicon


@lru_cache(maxsize=65536)
def emotions_of(token: str) -> frozenset[str]:
    """A word's NRC emotions, trying simple inflections (loved -> love, laughing -> laugh)."""
    lexicon = emotion_lexicon()
    if not token or token in STOPWORDS:
        return frozenset()
    forms = [token]
    for suffix, repl in (("ies", "y"), ("ied", "y"), ("ing", ""), ("ing", "e"), ("ed", ""), ("ed", "e"),
                         ("d", ""), ("es", ""), ("s", ""), ("ly", ""), ("ness", "")):  # fmt: skip
        if token.endswith(suffix) and len(token) - len(suffix) >= 3:
            forms.append(token[: -len(suffix)] + repl)
    for form in forms:
        if form in lexicon:
            return lexicon[form]
    return frozenset()


STRONG_EMOTIONS = frozenset(EMOTIONS) - {"anticipation", "trust"}


def emotion_weight(token: str) -> float:
    """1 for a word carrying a strong emotion (anger, disgust, fear, joy, sadness, surprise),
    0.3 for one with only anticipation/trust (NRC gives those to many plain words: morning,
    bank, team), else 0."""
    emotions = emotions_of(token)
    if not emotions:
        return 0.0
    return 1.0 if emotions & STRONG_EMOTIONS else 0.3


def hook_weights(toks: list[str]) -> np.ndarray:
    """Per-token hook weight: a hook phrase's weight on its first token, a hook word's on itself."""
    out = np.zeros(len(toks))
    by_first: dict[str, list[tuple[str, ...]]] = {}
    for phrase in HOOK_PHRASES:
        by_first.setdefault(phrase[0], []).append(phrase)
    for i, tok in enumerate(toks):
        if tok in HOOK_WORDS:
            out[i] += HOOK_WORD_WEIGHT
        for phrase in by_first.get(tok, ()):
            if tuple(toks[i : i + len(phrase)]) == phrase:
                out[i] += HOOK_PHRASE_WEIGHT
    return out


def _is_number(tok: str) -> bool:
    return tok.isdigit() or tok in _NUMBER_WORDS or tok == "one" or bool(re.fullmatch(r"\d+(st|nd|rd|th|s)?", tok))


def number_weights(toks: list[str]) -> np.ndarray:
    """Per-token numbers/lists weight (see the module doc)."""
    out = np.zeros(len(toks))
    for i, tok in enumerate(toks):
        if tok in _COUNTABLE_MARKERS and i + 1 < len(toks) and _is_number(toks[i + 1]):
            out[i] = 1.5
        elif tok in _ORDINALS:
            out[i] = 1.0
        elif tok == "one":
            out[i] = 0.3 if not (i and toks[i - 1] in _COUNTABLE_MARKERS) else 0.0
        elif _is_number(tok):
            out[i] = 0.6 if not (i and toks[i - 1] in _COUNTABLE_MARKERS) else 0.0
    return out


def is_question(toks: list[str]) -> bool:
    """A sentence that opens like a question: (fillers) question word, or aux + pronoun
    ("do you", "is it"), or "tell me". Long sentences opening with "what"/"how" are taken as
    statements unless followed by an aux or pronoun."""
    i = 0
    while i < len(toks) - 1 and i < 2 and toks[i] in _FILLERS:
        i += 1
    head = toks[i : i + 3]
    if not head:
        return False
    if head[0] in _QUESTION_WORDS:
        return len(toks) <= 20 or (len(head) > 1 and (head[1] in _AUX or head[1] in _PRONOUNS))
    if len(head) > 1 and head[0] in _AUX and head[1] in _PRONOUNS:
        return True
    return head[:2] == ["tell", "me"]


_SENTENCE_END = re.compile(r"[.?!…][\"'”’)\]]*$")


def ends_sentence(text: str) -> bool:
    """A word the recogniser wrote with a full stop, question or exclamation mark after it
    (Whisper punctuates; PocketSphinx does not, and its sentences come from pauses alone)."""
    return bool(_SENTENCE_END.search(text.strip()))


def sentences(words: list[Word], speech: list[tuple[float, float]] = ()) -> list[tuple[int, int]]:
    """Word index ranges [i, j) of the sentences of time-ordered words: split at sentence
    punctuation and at pauses."""
    if not words:
        return []
    starts = np.fromiter((w.start for w in words), float, len(words))
    ends = np.fromiter((w.end for w in words), float, len(words))
    enders = np.fromiter((ends_sentence(w.text) for w in words), bool, len(words))
    cut = _pause_cuts(starts, ends, speech, enders)
    bounds = [0, *(np.nonzero(cut)[0] + 1).tolist(), len(words)]
    return list(pairwise(bounds))


def _pause_cuts(starts: np.ndarray, ends: np.ndarray, speech, enders: np.ndarray | None = None) -> np.ndarray:
    """Bool per gap between word k and k+1: a sentence boundary (word k ends one with its
    punctuation, or a pause follows it)."""
    gaps = starts[1:] - ends[:-1]
    cut = gaps >= PAUSE_SECONDS
    if enders is not None and len(gaps):
        cut |= enders[:-1]
    if len(speech) > 1 and len(gaps):
        seg = np.asarray(sorted(speech), float)
        # VAD silences: (end of segment k, start of segment k+1)
        sil_start, sil_end = seg[:-1, 1], seg[1:, 0]
        keep = sil_end > sil_start
        sil_start, sil_end = sil_start[keep], sil_end[keep]
        if len(sil_start):
            # a silence that lies inside the gap (with 0.1 s slack)
            k = np.searchsorted(sil_start, ends[:-1] - 0.1, "left")
            k = np.minimum(k, len(sil_start) - 1)
            inside = (sil_start[k] >= ends[:-1] - 0.1) & (sil_end[k] <= starts[1:] + 0.1)
            cut |= inside & (gaps >= VAD_GAP_SECONDS)
    return cut


def resolve_genre(analysis: SourceAnalysis, options: ProcessOptions) -> str:
    """The job's genre, inferred from the source when it is "auto"."""
    return infer_genre(analysis) if options.genre == "auto" else options.genre


def prompt_terms(options: ProcessOptions) -> tuple[list[str], set[str]]:
    """(topic terms, style intents) of prompt + customInstructions. Terms are content words
    in prompt order (stopwords, instruction words and style words removed, one per stem)."""
    text = options.instructions
    out, seen, intents = [], set(), set()
    for tok in tokens(text):
        hit = [name for name, (words, _) in INTENTS.items() if tok in words]
        if hit:
            intents.update(hit)
        elif not (tok in STOPWORDS or tok in INSTRUCTION_WORDS or len(tok) < 2) and stem(tok) not in seen:
            seen.add(stem(tok))
            out.append(tok)
    return out[:12], intents


def _prompt_phrases(options: ProcessOptions) -> list[tuple[str, str]]:
    """Adjacent content-term pairs of the prompt ("machine learning")."""
    text = options.instructions
    seq = []
    for tok in tokens(text):
        ok = not (tok in STOPWORDS or tok in INSTRUCTION_WORDS or len(tok) < 2
                  or any(tok in words for words, _ in INTENTS.values()))  # fmt: skip
        seq.append(tok if ok else None)
    pairs = []
    for a, b in pairwise(seq):
        if a and b and stem(a) != stem(b) and (a, b) not in pairs:
            pairs.append((a, b))
    return pairs


# ---------------------------------------------------------------------------------------
# Genre
# ---------------------------------------------------------------------------------------


def infer_genre(analysis: SourceAnalysis) -> str:
    """Genre for genre "auto".

    - two or more speakers (each >= 10% of the turn time): "interview" when one of them
      mostly asks (>= 30% of their sentences are questions, and >= 2 of those questions are
      answered by another speaker) and talks less than half the time; else "podcast";
    - one speaker (or no diarization): "tutorial" when instruction markers (step, first,
      next, click, install, "make sure", "you need to", numbers...) are >= 3% of the words;
      "vlog" when speech covers less than 60% of the source; else "podcast" (a monologue).
    """
    words = analysis.words
    toks = [normalize_token(w.text) for w in words]
    duration = max(float(analysis.duration), 1e-6)
    talk: dict[int, float] = {}
    for turn in analysis.turns:
        talk[turn.speaker] = talk.get(turn.speaker, 0.0) + max(0.0, turn.end - turn.start)
    total_talk = sum(talk.values())
    speakers = [s for s, t in talk.items() if total_talk and t / total_talk >= 0.1]
    if len(speakers) >= 2:
        sents = sentences(words, analysis.speech)
        who = _speaker_lookup(analysis.turns)
        asked: dict[int, int] = {}
        said: dict[int, int] = {}
        answered: dict[int, int] = {}
        for k, (i, j) in enumerate(sents):
            spk = who((words[i].start + words[j - 1].end) / 2)
            said[spk] = said.get(spk, 0) + 1
            if is_question(toks[i:j]):
                asked[spk] = asked.get(spk, 0) + 1
                if k + 1 < len(sents):
                    ni, nj = sents[k + 1]
                    if who((words[ni].start + words[nj - 1].end) / 2) != spk and nj - ni >= 3:
                        answered[spk] = answered.get(spk, 0) + 1
        for spk in speakers:
            share = asked.get(spk, 0) / max(1, said.get(spk, 0))
            if share >= 0.3 and answered.get(spk, 0) >= 2 and talk[spk] / total_talk < 0.5:
                return "interview"
        return "podcast"
    if toks:
        marks = sum(1 for t in toks if t in _TUTORIAL_MARKERS or (t.isdigit()))
        for phrase in _TUTORIAL_PHRASES:
            n = len(phrase)
            marks += sum(1 for i in range(len(toks) - n + 1) if tuple(toks[i : i + n]) == phrase)
        if marks / len(toks) >= 0.03:
            return "tutorial"
    speech = _Coverage(analysis.speech if len(analysis.speech) else [(w.start, w.end) for w in words], gap=0.3)
    if speech.total / duration < 0.6:
        return "vlog"
    return "podcast"


def _speaker_lookup(turns) -> Callable[[float], int]:
    ordered = sorted(turns, key=lambda t: t.start)
    starts = [t.start for t in ordered]

    def who(t: float) -> int:
        if not ordered:
            return -1
        k = max(0, int(np.searchsorted(starts, t, "right")) - 1)
        best = ordered[k]
        if not best.start <= t <= best.end:  # nearest turn
            near = [ordered[m] for m in (k - 1, k, k + 1) if 0 <= m < len(ordered)]
            best = min(near, key=lambda u: min(abs(u.start - t), abs(u.end - t)))
        return best.speaker

    return who


# ---------------------------------------------------------------------------------------
# Index: per-source arrays so that each window is scored in O(1)
# ---------------------------------------------------------------------------------------


class _Coverage:
    """Covered seconds of a set of intervals (merged; gaps <= `gap` closed) up to a time."""

    def __init__(self, intervals, gap: float = 0.0):
        merged: list[list[float]] = []
        for a, b in sorted((float(a), float(b)) for a, b in intervals if b > a):
            if merged and a <= merged[-1][1] + gap:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        arr = np.asarray(merged, float).reshape(-1, 2)
        self.starts, self.ends = arr[:, 0], arr[:, 1]
        lengths = self.ends - self.starts
        self.before = np.concatenate([[0.0], np.cumsum(lengths)])[:-1] if len(lengths) else np.zeros(0)
        self.lengths = lengths
        self.total = float(lengths.sum())

    def upto(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, float)
        if not len(self.starts):
            return np.zeros_like(t)
        k = np.searchsorted(self.starts, t, "right") - 1
        kk = np.maximum(k, 0)
        covered = self.before[kk] + np.clip(t - self.starts[kk], 0.0, self.lengths[kk])
        return np.where(k < 0, 0.0, covered)

    def between(self, a, b) -> np.ndarray:
        return self.upto(b) - self.upto(a)


def _prefix(values: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(values, dtype=float)])


def _sat(x: np.ndarray, dur: np.ndarray, k: float) -> np.ndarray:
    """1 - exp(-x / (k * sqrt(duration / 30))): more hits count, with diminishing returns,
    and a longer window needs more of them (sqrt, so length is not simply rewarded)."""
    return 1.0 - np.exp(-x / (k * np.sqrt(np.maximum(dur, 1.0) / 30.0)))


class _Index:
    def __init__(self, analysis: SourceAnalysis, options: ProcessOptions):
        self.analysis = analysis
        self.options = options
        # time order; a word with a non-finite or reversed timing is dropped
        words = sorted((w for w in analysis.words if math.isfinite(w.start) and math.isfinite(w.end)
                        and w.end >= w.start), key=lambda w: (w.start, w.end))  # fmt: skip
        self.words = words
        n = len(words)
        self.starts = np.fromiter((w.start for w in words), float, n)
        self.ends = np.fromiter((w.end for w in words), float, n)
        self.mids = (self.starts + self.ends) / 2
        self.enders = np.fromiter((ends_sentence(w.text) for w in words), bool, n)
        self.toks = [normalize_token(w.text) for w in words]
        self.duration = float(analysis.duration)
        self.window = options.source_window(self.duration)
        self.low, self.high = options.length_range()
        self.genre = resolve_genre(analysis, options)

        speech = analysis.speech if len(analysis.speech) else [(w.start, w.end) for w in words]
        self.speech = _Coverage(speech, gap=0.3)
        self.P_hook = _prefix(hook_weights(self.toks))
        self.P_num = _prefix(number_weights(self.toks))
        self.P_emo = _prefix(np.fromiter((emotion_weight(t) for t in self.toks), float, n))
        self._loudness()
        self._faces()
        self._events()
        self._qa()
        self._prompt()

    # -- signal inputs
    def _loudness(self):
        values = np.asarray(list(self.analysis.loudness), float)
        self.has_loudness = len(values) > 0
        if not self.has_loudness:
            return
        values = np.where(np.isfinite(values), values, -120.0)
        values = np.maximum(values, -120.0)
        self.loud_step = float(self.analysis.loudness_step) or 0.5
        self.loud_median = float(np.median(values))
        self.loud_values = values
        self.P_loud = _prefix((values >= self.loud_median + 6.0).astype(float))
        levels = [values]
        span = 1
        while span * 2 <= len(values):
            prev = levels[-1]
            levels.append(np.maximum(prev[:-span], prev[span:]))
            span *= 2
        self.loud_table = levels

    def _faces(self):
        samples = sorted((float(t), float(f)) for t, f in self.analysis.faces)
        self.has_faces = len(samples) > 0
        if self.has_faces:
            self.face_t = np.asarray([s[0] for s in samples])
            self.face_f = np.clip(np.asarray([s[1] for s in samples]), 0.0, 1.0)
            self.P_face = _prefix(self.face_f)

    def _events(self):
        events = sorted((float(a), float(b)) for a, b, *_ in self.analysis.events if b >= a)
        self.has_events = len(events) > 0
        if self.has_events:
            self.event_starts = np.asarray([e[0] for e in events])
            self.event_ends_sorted = np.sort(np.asarray([e[1] for e in events]))
            self.event_cov = _Coverage(events)

    def _qa(self):
        """Question/answer pairs: (question start, answer end, weight), in source order."""
        self.has_qa = bool(self.words)
        sents = sentences(self.words, self.analysis.speech)
        who = _speaker_lookup(self.analysis.turns) if len(self.analysis.turns) else None
        qs, ae, wt = [], [], []
        for k in range(len(sents) - 1):
            i, j = sents[k]
            ni, nj = sents[k + 1]
            if not is_question(self.toks[i:j]) or nj - ni < 5 or is_question(self.toks[ni:nj]):
                continue
            if who is None:
                weight = 0.8
            else:
                q_spk = who(float(self.mids[i:j].mean()))
                a_spk = who(float(self.mids[ni:nj].mean()))
                weight = 1.0 if q_spk != a_spk else 0.6
            qs.append(self.starts[i])
            ae.append(self.ends[nj - 1])
            wt.append(weight)
        self.qa_start = np.asarray(qs, float)
        self.qa_end = np.maximum.accumulate(np.asarray(ae, float)) if ae else np.zeros(0)
        self.qa_weight = np.asarray(wt, float)
        self.P_qa = _prefix(self.qa_weight)

    def _prompt(self):
        terms, intents = prompt_terms(self.options)
        self.terms, self.intents = terms, intents
        self.prompt_active = False
        if not terms or not self.words:
            return
        n = len(self.words)
        matches = np.zeros((len(terms), n))
        vocab: dict[str, list[int]] = {}
        for i, tok in enumerate(self.toks):
            vocab.setdefault(tok, []).append(i)
        term_info = [(t, stem(t), phonetic(t)) for t in terms]
        for tok, positions in vocab.items():
            if not tok:
                continue
            for ti, term in enumerate(term_info):
                weight = _term_match(tok, *term)
                if weight:
                    matches[ti, positions] = weight
        # two words heard for one ("higher ring" ~ "hiring")
        codes = {c: ti for ti, (_, _, c) in enumerate(term_info) if len(c) >= 3}
        if codes:
            for i in range(n - 1):
                a, b = self.toks[i], self.toks[i + 1]
                if not a or not b or a in STOPWORDS and b in STOPWORDS:
                    continue
                ti = codes.get(phonetic(a + b))
                if ti is not None and matches[ti, i] == 0 and matches[ti, i + 1] == 0:
                    matches[ti, i] = 0.7
        if not matches.any():
            return
        self.prompt_active = True
        sents = sentences(self.words, self.analysis.speech)
        sent_of_word = np.zeros(n, int)
        for k, (i, j) in enumerate(sents):
            sent_of_word[i:j] = k
        idf = []
        for ti in range(len(terms)):
            df = len(set(sent_of_word[matches[ti] >= 0.6].tolist()))
            idf.append(math.log(1.0 + len(sents) / (1.0 + df)) if df else 0.0)
        self.term_idf = np.asarray(idf)
        # on-topic words: 1 in a sentence with a match, 0.5 in a sentence next to one
        sent_hit = np.zeros(len(sents))
        np.maximum.at(sent_hit, sent_of_word, (matches.max(axis=0) >= 0.6).astype(float))
        near = sent_hit.copy()
        near[1:] = np.maximum(near[1:], 0.5 * sent_hit[:-1])
        near[:-1] = np.maximum(near[:-1], 0.5 * sent_hit[1:])
        self.P_topic = _prefix(near[sent_of_word])
        self.P_terms = np.concatenate([np.zeros((len(terms), 1)), np.cumsum(matches, axis=1)], axis=1)
        phrase_hits = np.zeros(n)
        index = {t: k for k, t in enumerate(terms)}
        for a, b in _prompt_phrases(self.options):
            ka, kb = index.get(a), index.get(b)
            if ka is None or kb is None:
                continue
            first = matches[ka] >= 0.6
            second = matches[kb] >= 0.6
            nxt = np.zeros(n, bool)
            nxt[:-1] |= second[1:]
            nxt[:-2] |= second[2:]
            phrase_hits += (first & nxt).astype(float)
        self.has_phrases = bool(_prompt_phrases(self.options))
        self.P_phrase = _prefix(phrase_hits)

    # -- scoring
    def word_range(self, s: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.searchsorted(self.mids, s, "left"), np.searchsorted(self.mids, e, "left")

    def signals(self, s: np.ndarray, e: np.ndarray) -> dict[str, np.ndarray]:
        s = np.asarray(s, float)
        e = np.asarray(e, float)
        dur = np.maximum(e - s, 1e-6)
        a, b = self.word_range(s, e)
        count = (b - a).astype(float)
        out: dict[str, np.ndarray] = {}
        ratio = self.speech.between(s, e) / dur
        out["density"] = 0.5 * np.minimum(1.0, count / dur / 3.0) + 0.5 * np.minimum(1.0, ratio / 0.9)

        a_open = np.minimum(np.searchsorted(self.mids, s + OPENING_SECONDS, "left"), b)
        opening = self.P_hook[a_open] - self.P_hook[a]
        rest = self.P_hook[b] - self.P_hook[a_open]
        out["hook"] = _sat(2.0 * opening + rest, dur, 2.0)
        out["numbers"] = _sat(self.P_num[b] - self.P_num[a], dur, 3.0)
        rate = (self.P_emo[b] - self.P_emo[a]) / np.maximum(count, 1.0)
        out["emotion"] = np.clip((rate - 0.05) / 0.25, 0.0, 1.0)

        if self.has_qa:
            k0 = np.searchsorted(self.qa_start, s - 1e-6, "left")
            k1 = np.searchsorted(self.qa_end, e + 1e-6, "right")
            inside = k1 > k0
            kk = np.minimum(k0, max(len(self.qa_start) - 1, 0))
            if len(self.qa_start):
                opens = inside & (self.qa_start[kk] <= s + OPENING_SECONDS)
                first_w = np.where(opens, self.qa_weight[kk], 0.0)
                total = np.where(inside, self.P_qa[np.maximum(k1, k0)] - self.P_qa[k0], 0.0)
                out["qa"] = np.maximum(first_w, 0.6 * np.minimum(1.0, total))
            else:
                out["qa"] = np.zeros_like(s)

        if self.has_loudness:
            n = len(self.loud_values)
            i0 = np.clip(np.floor(s / self.loud_step).astype(int), 0, n - 1)
            i1 = np.clip(np.ceil(e / self.loud_step).astype(int), 1, n)
            i1 = np.maximum(i1, i0 + 1)
            length = i1 - i0
            level = np.floor(np.log2(length)).astype(int)
            level = np.minimum(level, len(self.loud_table) - 1)
            width = 2**level
            peak = np.empty_like(s)
            for lv in np.unique(level):
                sel = level == lv
                table = self.loud_table[lv]
                peak[sel] = np.maximum(table[i0[sel]], table[i1[sel] - width[sel]])
            share = (self.P_loud[i1] - self.P_loud[i0]) / length
            out["loudness"] = 0.5 * np.clip((peak - self.loud_median) / 12.0, 0.0, 1.0) + 0.5 * np.minimum(
                1.0, share / 0.25
            )

        if self.has_faces:
            f0 = np.searchsorted(self.face_t, s, "left")
            f1 = np.searchsorted(self.face_t, e, "right")
            cnt = f1 - f0
            mean = (self.P_face[f1] - self.P_face[f0]) / np.maximum(cnt, 1)
            out["faces"] = np.where(cnt > 0, mean, np.interp((s + e) / 2, self.face_t, self.face_f))

        if self.has_events:
            tail = e + 1.5
            secs = self.event_cov.between(s, tail)
            # events with start < tail, less those that ended by s (their start is < tail too)
            overlapping = np.searchsorted(self.event_starts, tail, "left") - np.searchsorted(
                self.event_ends_sorted, s, "right"
            )
            out["events"] = np.minimum(1.0, 0.35 * np.maximum(overlapping, 0) + secs / 4.0)

        if self.terms:
            if self.prompt_active:
                hits = self.P_terms[:, b] - self.P_terms[:, a]  # terms x windows
                present = np.minimum(1.0, hits)
                idf_total = self.term_idf.sum()
                if idf_total > 0:
                    coverage = (self.term_idf[:, None] * present).sum(axis=0) / idf_total
                else:
                    coverage = present.mean(axis=0)
                dens = _sat(hits.sum(axis=0), dur, 1.5)
                focus = (self.P_topic[b] - self.P_topic[a]) / np.maximum(count, 1.0)
                if self.has_phrases:
                    phrase = np.minimum(1.0, self.P_phrase[b] - self.P_phrase[a])
                    out["prompt"] = 0.35 * coverage + 0.15 * dens + 0.35 * focus + 0.15 * phrase
                else:
                    out["prompt"] = 0.4 * coverage + 0.2 * dens + 0.4 * focus
            else:
                out["prompt"] = np.zeros_like(s)
        return out

    def weights(self) -> dict[str, float]:
        weights = dict(GENRE_WEIGHTS[self.genre])
        for intent in self.intents:
            for signal, factor in INTENTS[intent][1].items():
                weights[signal] *= factor
        return weights

    def combine(self, signals: dict[str, np.ndarray]) -> np.ndarray:
        weights = self.weights()
        used = [k for k in SIGNALS if k in signals]
        total = sum(weights[k] for k in used)
        base = sum(weights[k] * signals[k] for k in used) / total
        if self.prompt_active and "prompt" in signals:
            return PROMPT_WEIGHT * signals["prompt"] + (1.0 - PROMPT_WEIGHT) * base
        return base

    # -- candidates
    def units(self) -> tuple[np.ndarray, np.ndarray]:
        """(start, end) of the pause-bounded units inside the window, long ones split."""
        ws, we = self.window
        # Units no longer than this always let some run of them land inside [low, high].
        split_limit = max(2.0, min(self.high / 2.0, self.high - self.low))
        inside = np.nonzero((self.starts >= ws - 1e-6) & (self.ends <= we + 1e-6))[0]
        if len(inside) == 0:
            spans = [(max(a, ws), min(b, we)) for a, b in zip(self.speech.starts, self.speech.ends)
                     if b > ws and a < we] if len(self.analysis.speech) else []  # fmt: skip
            if not spans:
                spans = [(ws, we)]
            out = []
            for a, b in spans:
                pieces = max(1, math.ceil((b - a) / split_limit))
                step = (b - a) / pieces
                out.extend((a + k * step, a + (k + 1) * step) for k in range(pieces))
            arr = np.asarray(out, float)
            return arr[:, 0], arr[:, 1]
        lo, hi = int(inside[0]), int(inside[-1]) + 1
        st, en = self.starts[lo:hi], self.ends[lo:hi]
        cut = _pause_cuts(st, en, self.analysis.speech, self.enders[lo:hi])
        gaps = st[1:] - en[:-1]
        bounds = [0, *(np.nonzero(cut)[0] + 1).tolist(), hi - lo]
        ranges: list[tuple[int, int]] = []
        stack = list(pairwise(bounds))[::-1]
        while stack:
            i, j = stack.pop()
            if j - i >= 2 and en[j - 1] - st[i] > split_limit:
                m = i + 1 + int(np.argmax(gaps[i : j - 1]))
                stack.append((m, j))
                stack.append((i, m))
            else:
                ranges.append((i, j))
        first = np.asarray([r[0] for r in ranges]) + lo
        last = np.asarray([r[1] for r in ranges]) + lo - 1
        prev_end = np.where(first > 0, self.ends[np.maximum(first - 1, 0)], -np.inf)
        next_start = np.where(last + 1 < len(self.words), self.starts[np.minimum(last + 1, len(self.words) - 1)],
                              np.inf)  # fmt: skip
        u_start = self.starts[first] - np.minimum(EDGE_PAD, np.maximum(self.starts[first] - prev_end, 0) / 2)
        u_end = self.ends[last] + np.minimum(EDGE_PAD, np.maximum(next_start - self.ends[last], 0) / 2)
        return np.maximum(u_start, ws), np.minimum(u_end, we)

    def candidates(self) -> tuple[np.ndarray, np.ndarray]:
        ws, we = self.window
        if we - ws <= self.low + 1e-9:
            return np.asarray([ws]), np.asarray([we])
        us, ue = self.units()
        lo = np.searchsorted(ue, us + self.low - 1e-9, "left")
        hi = np.searchsorted(ue, us + self.high + 1e-9, "right") - 1
        lo = np.maximum(lo, np.arange(len(us)))
        ok = lo <= hi
        idx = np.nonzero(ok)[0]
        if len(idx):
            lo, hi = lo[idx], hi[idx]
            steps = np.linspace(0.0, 1.0, MAX_ENDS_PER_START)
            ends = np.rint(lo[:, None] + (hi - lo)[:, None] * steps[None, :]).astype(int)
            starts = np.repeat(idx[:, None], MAX_ENDS_PER_START, axis=1)
            key = np.unique(starts.ravel() * len(ue) + ends.ravel())
            si, ei = key // len(ue), key % len(ue)
            return us[si], ue[ei]
        # No pause-bounded window fits (minDuration == maxDuration, long silences): windows of
        # the middle length from each unit start, their ends moved off any word they would cut.
        if we - ws <= self.high:
            return np.asarray([ws]), np.asarray([we])
        length = (self.low + self.high) / 2
        starts = us[us + length <= we + 1e-9]
        if not len(starts):
            starts = np.asarray([we - length])
        return starts, self._between_words(starts, np.minimum(starts + length, we))

    def _between_words(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """`ends` moved out of any word they fall inside: past it while the window stays
        within the longest clip, else back to its start (a clip never cuts a word)."""
        if not len(self.words):
            return ends
        k = np.searchsorted(self.starts, ends, "right") - 1
        inside = (k >= 0) & (self.ends[np.maximum(k, 0)] > ends + 1e-9)
        k = np.maximum(k, 0)
        after, before = self.ends[k], self.starts[k]
        fits = after - starts <= self.high + 1e-9
        moved = np.where(fits, after, np.maximum(before, starts + 1e-3))
        return np.where(inside, np.minimum(moved, self.window[1]), ends)


def _term_match(tok: str, term: str, term_stem: str, term_code: str) -> float:
    if tok == term:
        return 1.0
    if tok in STOPWORDS:
        return 0.0
    if stem(tok) == term_stem:
        return 0.9
    if term_code and len(tok) >= 3:
        code = phonetic(tok)
        if code == term_code and (len(code) >= 3 or jellyfish.jaro_winkler_similarity(tok, term) >= 0.5
                                  or tok[0] == term[0]):  # fmt: skip
            return 0.7
    if len(tok) >= 5 and len(term) >= 5 and jellyfish.jaro_winkler_similarity(tok, term) >= 0.9:
        return 0.6
    return 0.0


def to_score(combined: np.ndarray | float) -> np.ndarray | float:
    """0..1 -> 0..10 on the fixed curve 10 * (1 - e^(-3c)) / (1 - e^(-3))."""
    c = np.clip(combined, 0.0, 1.0)
    return 10.0 * (1.0 - np.exp(-SCORE_CURVE * c)) / (1.0 - math.exp(-SCORE_CURVE))


# ---------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------


def candidates(analysis: SourceAnalysis, options: ProcessOptions) -> list[tuple[float, float]]:
    """Candidate windows (start, end) in source seconds, sorted by start then end.

    Each starts just before a sentence's first word and ends just after a sentence's last
    word (sentences split at pauses), is within `ProcessOptions.length_range` and inside trimStart/trimEnd.
    A trimmed source no longer than the shortest clip is the one candidate.
    """
    return _candidates(_Index(analysis, options))


def _candidates(index: _Index) -> list[tuple[float, float]]:
    s, e = index.candidates()
    order = np.lexsort((e, s))
    return [(round(float(s[k]), 3), round(float(e[k]), 3)) for k in order]


def score_candidates(analysis: SourceAnalysis, spans, options: ProcessOptions) -> list[Moment]:
    """One Moment per span, in the spans' order (not ranked); bounds kept inside trimStart/trimEnd
    and the source, in milliseconds."""
    index = _Index(analysis, options)
    spans = list(spans)
    if not spans:
        return []
    s = np.asarray([float(a) for a, _ in spans])
    e = np.asarray([float(b) for _, b in spans])
    signals = index.signals(s, e)
    combined = index.combine(signals)
    return [_moment(index, signals, combined, k, s[k], e[k]) for k in range(len(spans))]


def _moment(index: _Index, signals, combined, k: int, start: float, end: float) -> Moment:
    a, b = index.word_range(np.asarray([start]), np.asarray([end]))
    text = " ".join(w.text for w in index.words[int(a[0]) : int(b[0])])
    values = {name: round(float(v[k]), 4) for name, v in signals.items()}
    values["combined"] = round(float(combined[k]), 4)
    ws, we = index.window  # milliseconds, never rounded outside the trimmed source
    start = min(max(round(float(start), 3), ws), we)
    end = max(min(round(float(end), 3), we), start)
    return Moment(start=start, end=end,
                  score=round(float(to_score(combined[k])), 1), transcript=text, signals=values)  # fmt: skip


def _overlaps(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Overlap of more than MAX_OVERLAP of the shorter window's length."""
    inter = min(a[1], b[1]) - max(a[0], b[0])
    shorter = min(a[1] - a[0], b[1] - b[0])
    return inter > MAX_OVERLAP * shorter + 1e-9


def _greedy(order, spans, limit: int) -> list[int]:
    chosen: list[int] = []
    for k in order:
        span = spans[k]
        if all(not _overlaps(span, spans[c]) for c in chosen):
            chosen.append(k)
            if len(chosen) >= limit:
                break
    return chosen


def rank_key(moment: Moment):
    return (-moment.score, -moment.signals.get("combined", 0.0), moment.start, moment.end)


def select_moments(analysis: SourceAnalysis, options: ProcessOptions,
                   rescore: Callable[[list[Moment]], list[Moment]] | None = None) -> list[Moment]:  # fmt: skip
    """The job's moments, ranked BEST-FIRST (the caller numbers clips 1..N in this order).

    Up to numClips (or maxClips) windows, fewer when the source cannot hold that many
    without two overlapping. With `rescore`, the top
    3*N distinct windows are passed to it and the final pick is made on the scores it
    returns; a rescore that raises or returns something unusable is ignored (logged).
    mode "none" is one moment over the whole trimmed source.
    """
    index = _Index(analysis, options)
    n = options.numClips
    if options.mode == "none":
        s, e = np.asarray([index.window[0]]), np.asarray([index.window[1]])
    else:
        s, e = index.candidates()
    signals = index.signals(s, e)
    combined = index.combine(signals)
    order = np.lexsort((e, s, -combined))
    spans = list(zip(s.tolist(), e.tolist()))
    pool_size = n * RESCORE_POOL_FACTOR if rescore is not None else n
    pool = [_moment(index, signals, combined, k, s[k], e[k]) for k in _greedy(order, spans, pool_size)]
    if rescore is None:
        return pool[:n]
    try:
        rescored = rescore(list(pool))
        if not isinstance(rescored, list) or not all(isinstance(m, Moment) for m in rescored) or not rescored:
            raise TypeError("rescore must return a non-empty list of Moment")
    except Exception as exc:  # noqa: BLE001 - never fail the job over the optional hook
        log.warning("moment rescore failed, keeping offline ranking: %s", exc)
        rescored = pool
    ranked = sorted(rescored, key=rank_key)
    keep = _greedy(range(len(ranked)), [(m.start, m.end) for m in ranked], n)
    return [ranked[k] for k in keep]
