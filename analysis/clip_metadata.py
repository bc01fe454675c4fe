"""Offline clip metadata: title, hook, key insight, dominant emotion, hashtags, viral score.

Everything comes from the clip's own recognized words; sentences end at sentence
punctuation (Whisper writes it) and at pauses (`moments.sentences`). Deterministic; no model
or data is downloaded.

- keyphrases: YAKE (1-2 word phrases over the clip's sentences, top 20), dropping phrases
  with a stopword, filler or a token under 3 characters, and word pairs heard only once;
  re-ranked by
  1 / (1 + YAKE rank) * (1 + ln(occurrences in the clip)), ties by phrase.
- hashtags: the top MAX_HASHTAGS keyphrases, lowercase, spaces removed, no '#'
  (["hiring", "startups"]).
- viral_hook: the sentence with the highest 2 * hook-lexicon weight + keyphrase weight per
  word (earliest on ties; the opening sentence when nothing scores), whole; a sentence of
  more than HOOK_WORDS words is cut to HOOK_WORDS starting just before its hook phrase.
  Sentence case.
- title: the viral_hook's sentence from its hook phrase on ("the secret is ...") when it has
  one (and 3+ words from there), else
  the key insight sentence; at most TITLE_CHARS characters (cut at a word, no trailing
  stopword), sentence case. "Highlight" for a clip without words.
- key_insight: the sentence (>= 4 words when there is one) with the most keyphrase weight
  (occurrences x keyphrase weight), cut to INSIGHT_WORDS words.
- dominant_emotion: NRC lexicon counts over the clip's words for anger, anticipation,
  disgust, fear, joy, sadness, surprise, trust (anticipation and trust, which the lexicon
  gives to many plain words, count half); "neutral" when the top count is under 3 or under
  6% of the words. Ties go to the first in alphabetical order.
- viral_score: the moment's score.

With autoHook off (ProcessOptions.autoHook) there is no title and no viral_hook.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING

from analysis.moments import (
    EMOTIONS,
    HOOK_PHRASES,
    STOPWORDS,
    Moment,
    SourceAnalysis,
    emotions_of,
    hook_weights,
    normalize_token,
    sentences,
)
from reelfarm.options import ProcessOptions

if TYPE_CHECKING:
    import yake

MAX_HASHTAGS = 4
TITLE_CHARS = 60
HOOK_WORDS = 25  # a hook is a whole sentence; a longer one is cut (the LLM's hook limit too)
INSIGHT_WORDS = 30
WEAK_EMOTIONS = {"anticipation": 0.5, "trust": 0.5}


@lru_cache(maxsize=1)
def _extractor() -> yake.KeywordExtractor:
    import yake  # on first use: a job without moments (mode "none") never needs it

    return yake.KeywordExtractor(lan="en", n=2, dedup_lim=0.7, top=20)


def keyphrases(sentence_tokens: list[list[str]]) -> list[tuple[str, float]]:
    """(phrase, weight) best-first for a clip's sentences (each a list of tokens)."""
    text = ". ".join(" ".join(s) for s in sentence_tokens if s)
    if not text.strip():
        return []
    try:
        found = _extractor().extract_keywords(text)
    except Exception:  # noqa: BLE001 - yake on degenerate text (one repeated word): no keyphrases
        return []
    flat = [t for s in sentence_tokens for t in s]
    scored = []
    for rank, (phrase, _) in enumerate(found):
        parts = phrase.lower().split()
        if not parts or any(p in STOPWORDS or len(p) < 3 or not p.isalnum() or p.isdigit() for p in parts):
            continue
        count = _occurrences(flat, parts)
        if not count or (len(parts) > 1 and count < 2):  # a one-off word pair is rarely a topic
            continue
        scored.append((" ".join(parts), 1.0 / (1 + rank) * (1.0 + math.log(count))))
    scored.sort(key=lambda pw: (-pw[1], pw[0]))
    return scored


def _occurrences(toks: list[str], phrase: list[str]) -> int:
    n = len(phrase)
    return sum(1 for i in range(len(toks) - n + 1) if toks[i : i + n] == phrase)


def sentence_case(words: list[str]) -> str:
    """First letter upper case, "i"/"i'm"/"i've" capitalised, the rest as recognized."""
    out = []
    for w in words:
        if w == "i" or w.startswith("i'"):
            w = "I" + w[1:]
        out.append(w)
    text = " ".join(out).strip()
    return text[:1].upper() + text[1:]


def _cut(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word, without a dangling "and"/"the"/"of"..."""
    if len(text) <= limit:
        return text
    words = text[: limit + 1].split(" ")[:-1] or [text[:limit]]
    while len(words) > 1 and normalize_token(words[-1]) in STOPWORDS:
        words.pop()
    return " ".join(words).rstrip(" ,;:-")


def dominant_emotion(toks: list[str]) -> str:
    counts = dict.fromkeys(EMOTIONS, 0.0)
    for tok in toks:
        for emotion in emotions_of(tok):
            counts[emotion] += WEAK_EMOTIONS.get(emotion, 1.0)
    best = min(EMOTIONS, key=lambda e: (-counts[e], e))
    if counts[best] < 3 or counts[best] < 0.06 * len(toks):
        return "neutral"
    return best


def _hook_start(toks: list[str]) -> int | None:
    """Index of the first hook phrase in a sentence."""
    for i in range(len(toks)):
        for phrase in HOOK_PHRASES:
            if tuple(toks[i : i + len(phrase)]) == phrase:
                return i
    return None


def clip_metadata(moment: Moment, analysis: SourceAnalysis, options: ProcessOptions) -> dict:
    """{"title", "viral_hook", "key_insight", "dominant_emotion", "hashtags", "viral_score"};
    no title/viral_hook when options.autoHook is off."""
    words = sorted((w for w in analysis.words if moment.start <= (w.start + w.end) / 2 < moment.end),
                   key=lambda w: (w.start, w.end))  # fmt: skip
    ranges = sentences(words, analysis.speech)
    shown = [[words[k].text.strip() for k in range(i, j)] for i, j in ranges]  # as written (Whisper: cased)
    toks = [[normalize_token(t) for t in s] for s in shown]
    phrases = keyphrases(toks)
    weight_of = dict(phrases)

    def keyphrase_weight(sent: list[str]) -> float:
        return sum(w * _occurrences(sent, p.split()) for p, w in weight_of.items())

    # key insight: most keyphrase weight; prefer sentences of 4+ words
    insight_idx = None
    if toks:
        insight_idx = min(range(len(toks)),
                          key=lambda k: (len(toks[k]) < 4, -round(keyphrase_weight(toks[k]), 9), k))  # fmt: skip
    # hook: hook lexicon first, keyphrase density second
    hook_idx = None
    if toks:
        def hook_score(k: int) -> float:
            sent = toks[k]
            return 2.0 * float(hook_weights(sent).sum()) + keyphrase_weight(sent) / max(len(sent), 1)

        scores = [round(hook_score(k), 9) for k in range(len(toks))]
        hook_idx = min(range(len(toks)), key=lambda k: (-scores[k], k)) if max(scores) > 0 else 0

    hashtags = []
    for phrase, _ in phrases:
        tag = "".join(phrase.split())
        if tag not in hashtags:
            hashtags.append(tag)
        if len(hashtags) == MAX_HASHTAGS:
            break

    flat = [t for s in toks for t in s]
    meta: dict = {}
    if options.autoHook:
        meta["title"] = _title(shown, toks, hook_idx, insight_idx, phrases)
        meta["viral_hook"] = "" if hook_idx is None else _hook(shown[hook_idx], toks[hook_idx])
    meta["key_insight"] = sentence_case(shown[insight_idx][:INSIGHT_WORDS]) if insight_idx is not None else ""
    meta["dominant_emotion"] = dominant_emotion(flat)
    meta["hashtags"] = hashtags
    meta["viral_score"] = moment.score
    return meta


def _hook(shown: list[str], toks: list[str]) -> str:
    """The hook sentence whole; one too long to be a hook (over HOOK_WORDS words) from
    just before its hook phrase on, HOOK_WORDS words."""
    if len(shown) <= HOOK_WORDS:
        return sentence_case(shown)
    start = _hook_start(toks)
    first = max(0, start - 2) if start is not None and start > 2 else 0
    return sentence_case(shown[first : first + HOOK_WORDS])


def _title(shown: list[list[str]], toks: list[list[str]], hook_idx: int | None, insight_idx: int | None,
           phrases: list[tuple[str, float]]) -> str:  # fmt: skip
    if hook_idx is not None:
        start = _hook_start(toks[hook_idx])
        if start is not None and len(toks[hook_idx]) - start >= 3:
            return _cut(sentence_case(shown[hook_idx][start:]), TITLE_CHARS)
    if insight_idx is not None and shown[insight_idx]:
        return _cut(sentence_case(shown[insight_idx]), TITLE_CHARS)
    if phrases:
        return _cut(sentence_case(phrases[0][0].split()), TITLE_CHARS)
    return "Highlight"
