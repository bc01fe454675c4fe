"""Moment selection over scripted transcripts (words laid out at 2.5 words/s, pauses between sentences)."""

from __future__ import annotations

import random

import pytest

from analysis.moments import (
    PAUSE_SECONDS,
    Moment,
    SourceAnalysis,
    candidates,
    infer_genre,
    score_candidates,
    select_moments,
    sentences,
)
from harness.scripted_speech import layout, opts
from reelfarm.transcript import Word

FILLER = [
    "we talked about the weather and the garden last week",
    "my brother likes to play football on sundays with his friends",
    "the car needed new tires before the long drive north",
    "there was a long line at the bank this morning",
    "she painted the kitchen a pale shade of green",
    "the train was late again so we walked home",
    "our neighbour bought a new lawn mower in the spring",
    "the library moved to the building by the river",
    "they watched a film about ships and sailors",
    "we stayed at the cabin near the lake for a while",
]
COFFEE = [
    "i drink coffee every morning before work",
    "the best coffee comes from small farms in the mountains",
    "cold brew coffee is smoother than hot coffee and less bitter",
    "we roast our own coffee beans at home in a small pan",
    "a good coffee grinder matters more than the machine",
]
# The same passage as a recognizer with a high error rate might hear it: never "coffee".
COFFEE_MISHEARD = [
    "i drink coffey every morning before work",
    "the best cough he comes from small farms in the mountains",
    "cold brew coffees is smoother than hot copy and less bitter",
    "we roast our own kofi beans at home in a small pan",
    "a good coffey grinder matters more than the machine",
]
HOOKS = [
    "the secret nobody tells you is that it is simple",
    "what is the biggest mistake people make",
    "the truth is most people quit way too early",
    "here's why you won't believe how often that happens",
    "honestly it is a crazy lesson that changed my life",
]
LIST = [
    "first you open the settings page",
    "second you choose the export tab",
    "step three you press the start button",
    "number four is picking 1080 or 720",
    "fifth and finally you wait about 10 minutes",
]


def filler(n, seed):
    rnd = random.Random(seed)
    return [rnd.choice(FILLER) for _ in range(n)]


def passage(before, middle, after, seed=0, **kwargs):
    """Filler, a passage, filler; returns (analysis, (passage start, passage end))."""
    sents = filler(before, seed) + middle + filler(after, seed + 1)
    words, spans, turns, end = layout(sents, **kwargs)
    analysis = SourceAnalysis(duration=end + 1.0, words=words, turns=turns)
    return analysis, (spans[before][0], spans[before + len(middle) - 1][1])


def overlap(a, b):
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def covers_mostly(moment, span):
    return overlap((moment.start, moment.end), span) >= 0.5 * min(moment.end - moment.start, span[1] - span[0])


# --------------------------------------------------------------------------------- ranges


@pytest.mark.parametrize(
    "options, expected",
    [
        ({}, (20.0, 45.0)),
        ({"clipLength": "short"}, (3.0, 15.0)),
        ({"clipLength": "medium"}, (20.0, 45.0)),
        ({"clipLength": "long"}, (45.0, 90.0)),
        ({"minDuration": 30, "maxDuration": 60}, (30.0, 60.0)),
        ({"minDuration": 30, "maxDuration": None}, (30.0, 60.0)),
        ({"minDuration": 90}, (90.0, 90.0)),
        ({"maxDuration": 20}, (20.0, 20.0)),
        ({"clipLength": "long", "minDuration": 10, "maxDuration": 12}, (10.0, 12.0)),
    ],
)
def test_length_range(options, expected):
    assert opts(options).length_range() == expected


@pytest.mark.parametrize(
    "options", [{"clipLength": "huge"}, {"minDuration": 50, "maxDuration": 40}, {"minDuration": -1},
                {"maxDuration": "soon"}, {"minDuration": float("nan")}],
)  # fmt: skip
def test_length_range_rejects_bad_options(options):
    with pytest.raises(ValueError):
        opts(options).length_range()


# --------------------------------------------------------------------------------- candidates


def _rnd_sentences(n, seed):
    rnd = random.Random(seed)
    vocab = " ".join(FILLER + COFFEE).split()
    return [" ".join(rnd.choice(vocab) for _ in range(rnd.randint(3, 16))) for _ in range(n)]


def _assert_at_pause(words, t, window):
    """No word straddles t, and t sits in a gap of at least PAUSE_SECONDS (or at the window edge)."""
    assert all(w.end <= t + 1e-6 or w.start >= t - 1e-6 for w in words)
    before = [w for w in words if w.end <= t + 1e-6]
    after = [w for w in words if w.start >= t - 1e-6]
    if before and after and window[0] + 1e-6 < t < window[1] - 1e-6:
        assert after[0].start - before[-1].end >= PAUSE_SECONDS - 1e-6


@pytest.mark.parametrize(
    "options", [{"clipLength": "short"}, {"clipLength": "medium"}, {"clipLength": "long"},
                {"minDuration": 30, "maxDuration": 60}],
)  # fmt: skip
def test_candidates_start_and_end_at_pauses_within_the_range(options):
    words, _, _, end = layout(_rnd_sentences(150, 3), pause=0.6)
    analysis = SourceAnalysis(duration=end, words=words)
    spans = candidates(analysis, opts(options))
    low, high = opts(options).length_range()
    assert len(spans) > 50
    assert spans == sorted(spans)
    for start, stop in spans:
        assert low - 1e-6 <= stop - start <= high + 1e-6
        assert 0 <= start < stop <= end
        _assert_at_pause(words, start, (0, end))
        _assert_at_pause(words, stop, (0, end))
    # starts slide over many sentence starts, not a fixed grid
    assert len({s for s, _ in spans}) > 20


def test_candidates_use_vad_silences_as_pauses():
    # Two sentences with only a 0.2 s word gap between them: a pause only per the VAD.
    words, _, _, end = layout(["one two three four five six seven eight"] * 20, pause=0.2)
    no_vad = SourceAnalysis(duration=end, words=words)
    assert candidates(no_vad, opts({"minDuration": 6, "maxDuration": 12})) != []
    speech, seg_start = [], 0.0
    for i in range(1, len(words)):
        if words[i].start - words[i - 1].end > 0.15:
            speech.append((seg_start, words[i - 1].end + 0.02))
            seg_start = words[i].start - 0.02
    speech.append((seg_start, words[-1].end))
    with_vad = SourceAnalysis(duration=end, words=words, speech=speech)
    spans = candidates(with_vad, opts({"minDuration": 6, "maxDuration": 12}))
    assert spans
    sentence_starts = {w.start for k, w in enumerate(words) if k % 8 == 0}
    # every candidate starts just before a sentence's first word (VAD boundary)
    for start, _ in spans:
        first = min((w for w in words if w.start >= start - 1e-6), key=lambda w: w.start)
        assert first.start in sentence_starts


def test_long_sentences_without_pauses_are_split():
    # One 120 s "sentence" (recognizer heard no pause): windows are still found.
    words = [Word("word", round(i * 0.4, 3), round(i * 0.4 + 0.3 + (0.05 if i % 17 == 0 else 0), 3))
             for i in range(300)]  # fmt: skip
    analysis = SourceAnalysis(duration=121.0, words=words)
    spans = candidates(analysis, opts({"clipLength": "medium"}))
    assert spans
    for start, stop in spans:
        assert 20 - 1e-6 <= stop - start <= 45 + 1e-6
        assert all(w.end <= start + 1e-6 or w.start >= start - 1e-6 for w in words)


def test_trim_is_respected():
    words, _, _, end = layout(_rnd_sentences(120, 8))
    analysis = SourceAnalysis(duration=end, words=words)
    options = opts({"clipLength": "medium", "trimStart": 50.0, "trimEnd": 200.0, "numClips": 4})
    spans = candidates(analysis, opts(options))
    assert spans
    assert all(50.0 <= s and e <= 200.0 for s, e in spans)
    for moment in select_moments(analysis, options):
        assert 50.0 <= moment.start and moment.end <= 200.0
        inside = [w.text for w in words if w.start >= moment.start and w.end <= moment.end]
        assert moment.transcript == " ".join(inside)


def test_source_shorter_than_the_minimum_is_one_candidate():
    words, _, _, _ = layout(["a short clip of just a few words", "and one more"])
    analysis = SourceAnalysis(duration=10.0, words=words)
    assert candidates(analysis, opts({"clipLength": "medium"})) == [(0.0, 10.0)]
    assert candidates(analysis, opts({"clipLength": "medium", "trimStart": 2, "trimEnd": 9})) == [(2.0, 9.0)]
    moments = select_moments(analysis, opts({"clipLength": "medium", "numClips": 3}))
    assert [(m.start, m.end) for m in moments] == [(0.0, 10.0)]


def test_no_words_still_gives_windows():
    analysis = SourceAnalysis(duration=300.0, words=[], loudness=[-30.0] * 600)
    moments = select_moments(analysis, opts({"clipLength": "medium", "numClips": 3}))
    assert len(moments) == 3
    for m in moments:
        assert 20 - 1e-6 <= m.end - m.start <= 45 + 1e-6


def test_mode_none_is_the_whole_trimmed_source():
    analysis, _ = passage(10, COFFEE, 10)
    [moment] = select_moments(analysis, opts({"mode": "none", "trimStart": 5, "trimEnd": 60}))
    assert (moment.start, moment.end) == (5.0, 60.0)


# --------------------------------------------------------------------------------- prompt


def _decoy_source(middle, seed=11):
    """Hook/question passage (attractive without a prompt), filler, the topic passage, filler."""
    sents = filler(20, seed) + HOOKS + filler(20, seed + 1) + middle + filler(20, seed + 2)
    words, spans, _, end = layout(sents)
    topic = (spans[45][0], spans[45 + len(middle) - 1][1])
    hooks = (spans[20][0], spans[24][1])
    return SourceAnalysis(duration=end + 1, words=words), topic, hooks


@pytest.mark.parametrize("field", ["prompt", "customInstructions"])
def test_prompt_topic_wins(field):
    analysis, topic, hooks = _decoy_source(COFFEE)
    plain = select_moments(analysis, opts({"clipLength": "medium", "genre": "podcast"}))
    assert covers_mostly(plain[0], hooks)  # without a prompt the hook passage wins
    asked = select_moments(analysis, opts({"clipLength": "medium", "genre": "podcast",
                                      field: "Focus on moments about coffee"}))  # fmt: skip
    assert covers_mostly(asked[0], topic)
    assert asked[0].signals["prompt"] > 0.7
    assert not covers_mostly(asked[0], hooks)


def test_prompt_matches_misrecognised_words():
    analysis, topic, hooks = _decoy_source(COFFEE_MISHEARD)
    assert "coffee" not in [w.text for w in analysis.words]
    top = select_moments(analysis, opts({"clipLength": "medium", "prompt": "Focus on moments about coffee"}))[0]
    assert covers_mostly(top, topic)
    [on, off] = score_candidates(analysis, [topic, hooks], opts({"prompt": "coffee"}))
    assert on.signals["prompt"] > 0.5
    assert off.signals["prompt"] == 0


@pytest.mark.parametrize(
    "heard, match",
    [("coffee", True), ("coffees", True), ("coffey", True), ("cough he", True), ("kofi", True),
     ("toffee", False), ("table", False), ("the", False)],
)  # fmt: skip
def test_prompt_word_matching(heard, match):
    words, _, _, end = layout(["we sat by the window", f"and there was {heard} on the table", "it was late"])
    analysis = SourceAnalysis(duration=end, words=words)
    [moment] = score_candidates(analysis, [(0.0, end)], opts({"prompt": "coffee"}))
    assert (moment.signals["prompt"] > 0) is match


def test_split_word_phonetic_match():
    # "hiring" heard as two words
    words, _, _, end = layout(["we are higher ring three engineers this year", "the weather was fine"])
    analysis = SourceAnalysis(duration=end, words=words)
    [moment] = score_candidates(analysis, [(0.0, end)], opts({"prompt": "moments about hiring"}))
    assert moment.signals["prompt"] > 0


def test_prompt_without_matches_falls_back_to_the_other_signals():
    analysis, _, _ = _decoy_source(COFFEE)
    plain = select_moments(analysis, opts({"clipLength": "medium", "genre": "podcast"}))
    absent = select_moments(analysis, opts({"clipLength": "medium", "genre": "podcast", "prompt": "submarines"}))
    assert [(m.start, m.end) for m in plain] == [(m.start, m.end) for m in absent]
    assert [m.score for m in plain] == [m.score for m in absent]


# --------------------------------------------------------------------------------- selection


def _pairs_overlap_ok(moments):
    for i, a in enumerate(moments):
        for b in moments[i + 1 :]:
            shorter = min(a.end - a.start, b.end - b.start)
            assert overlap((a.start, a.end), (b.start, b.end)) <= 0.5 * shorter + 1e-6


@pytest.mark.parametrize("key", ["numClips", "maxClips"])
def test_num_clips_ranked_scored_and_not_overlapping(key):
    words, _, _, end = layout(_rnd_sentences(200, 21))
    analysis = SourceAnalysis(duration=end, words=words)
    moments = select_moments(analysis, opts({"clipLength": "medium", key: 5}))
    assert len(moments) == 5
    _pairs_overlap_ok(moments)
    for m in moments:
        assert isinstance(m, Moment)
        assert 0.0 <= m.score <= 10.0 and round(m.score, 1) == m.score
        assert all(0.0 <= v <= 1.0 for v in m.signals.values())
        assert 20 - 1e-6 <= m.end - m.start <= 45 + 1e-6
    assert [m.score for m in moments] == sorted((m.score for m in moments), reverse=True)


def test_fewer_clips_when_the_source_cannot_hold_them():
    words, _, _, end = layout(_rnd_sentences(16, 4))  # ~70 s
    analysis = SourceAnalysis(duration=end, words=words)
    assert 60 < end < 90
    moments = select_moments(analysis, opts({"clipLength": "medium", "numClips": 10}))
    assert 1 <= len(moments) < 10
    _pairs_overlap_ok(moments)


def test_dev_min_and_max_duration():
    words, _, _, end = layout(_rnd_sentences(200, 9))
    analysis = SourceAnalysis(duration=end, words=words)
    moments = select_moments(analysis, opts({"numClips": 3, "minDuration": 30, "maxDuration": 60}))
    assert len(moments) == 3
    assert all(30 - 1e-6 <= m.end - m.start <= 60 + 1e-6 for m in moments)


def test_genre_changes_the_ranking():
    """Tutorial weighs numbers/lists 0.35 and hooks 0.18; podcast hooks 0.22 + questions 0.18
    and numbers 0.07: the numbered-list passage wins for tutorial, the hook passage for podcast."""
    sents = filler(15, 1) + LIST + filler(15, 2) + HOOKS + filler(15, 3)
    words, spans, _, end = layout(sents)
    analysis = SourceAnalysis(duration=end, words=words)
    listed = (spans[15][0], spans[19][1])
    hooks = (spans[35][0], spans[39][1])
    short = opts({"minDuration": 10, "maxDuration": 20})
    tutorial = select_moments(analysis, opts(short, genre="tutorial"))
    podcast = select_moments(analysis, opts(short, genre="podcast"))
    assert covers_mostly(tutorial[0], listed)
    assert covers_mostly(podcast[0], hooks)
    [lst, hk] = score_candidates(analysis, [listed, hooks], opts(short, genre="tutorial"))
    assert lst.signals["numbers"] > hk.signals["numbers"]
    assert hk.signals["hook"] > lst.signals["hook"]


def test_rescore_hook_sees_the_pool_and_decides():
    words, _, _, end = layout(_rnd_sentences(200, 13))
    analysis = SourceAnalysis(duration=end, words=words)
    options = opts({"clipLength": "medium", "numClips": 2})
    offline = select_moments(analysis, options)
    seen = []

    def reverse(moments):
        seen.append(list(moments))
        return [Moment(m.start, m.end, float(k), m.transcript, dict(m.signals)) for k, m in enumerate(moments)]

    rescored = select_moments(analysis, options, rescore=reverse)
    assert len(seen[0]) == 6  # 3 * numClips distinct windows
    _pairs_overlap_ok(seen[0])
    # the worst of the pool now ranks first
    assert (rescored[0].start, rescored[0].end) == (seen[0][-1].start, seen[0][-1].end)
    assert [(m.start, m.end) for m in rescored] != [(m.start, m.end) for m in offline]

    def broken(moments):
        raise RuntimeError("model down")

    assert select_moments(analysis, options, rescore=broken) == offline
    assert select_moments(analysis, options, rescore=lambda ms: "garbage") == offline


def test_deterministic():
    analysis, _, _ = _decoy_source(COFFEE)
    options = opts({"clipLength": "short", "numClips": 4, "prompt": "coffee"})
    assert select_moments(analysis, options) == select_moments(analysis, options)


def test_thirty_thousand_words():
    rnd = random.Random(2)
    vocab = " ".join(FILLER + COFFEE + HOOKS + LIST).split()
    words, t = [], 0.0
    for _ in range(30_000):
        words.append(Word(rnd.choice(vocab), round(t, 2), round(t + 0.3, 2)))
        t += 0.35 + (rnd.random() * 0.8 if rnd.random() < 0.12 else 0.0)
    analysis = SourceAnalysis(duration=t + 1, words=words, loudness=[-30 + rnd.random() * 10 for _ in range(int(t * 2))])
    moments = select_moments(analysis, opts({"clipLength": "long", "numClips": 10, "prompt": "coffee beans"}))
    assert len(moments) == 10
    _pairs_overlap_ok(moments)


# --------------------------------------------------------------------------------- signals


def test_density_signal():
    dense, _, _, end = layout(["a b c d e f g h i j k l"] * 4, pause=0.4)
    sparse, _, _, _ = layout(["a b c"] * 4, start=end + 1, pause=3.0)
    analysis = SourceAnalysis(duration=60, words=dense + sparse)
    [d, s] = score_candidates(analysis, [(0, end), (end + 1, sparse[-1].end)], opts())
    assert d.signals["density"] > 0.8
    assert s.signals["density"] < 0.4


def test_loudness_signal_is_relative_to_the_source_median():
    words, _, _, end = layout(filler(30, 3))
    loud = [-30.0] * int(end * 2 + 2)
    for k in range(200, 220):  # 100-110 s, 15 dB above the median
        loud[k] = -15.0
    analysis = SourceAnalysis(duration=end, words=words, loudness=loud, loudness_step=0.5)
    [peak, flat] = score_candidates(analysis, [(95.0, 120.0), (20.0, 45.0)], opts())
    assert peak.signals["loudness"] > 0.8
    assert flat.signals["loudness"] == 0.0
    # louder overall source: the same burst is no longer a peak
    louder = SourceAnalysis(duration=end, words=words, loudness=[x + 15 for x in loud])
    assert score_candidates(louder, [(20.0, 45.0)], opts())[0].signals["loudness"] == 0.0
    assert "loudness" not in score_candidates(SourceAnalysis(duration=end, words=words), [(20, 45)], opts())[0].signals


def test_events_signal():
    words, _, _, end = layout(filler(30, 3))
    analysis = SourceAnalysis(duration=end, words=words, events=[(50.5, 52.0, "laughter"), (90, 93, "applause")])
    [before_laugh, applause, none] = score_candidates(analysis, [(30.0, 50.0), (80.0, 100.0), (100.0, 120.0)], opts())
    assert before_laugh.signals["events"] > 0.5  # the laugh right after the punchline counts
    assert applause.signals["events"] >= 0.9
    assert none.signals["events"] == 0.0


def test_faces_signal():
    words, _, _, end = layout(filler(30, 3))
    faces = [(t * 2.0, 1.0 if t * 2.0 < 60 else 0.0) for t in range(int(end / 2))]
    analysis = SourceAnalysis(duration=end, words=words, faces=faces)
    [face, empty] = score_candidates(analysis, [(10.0, 40.0), (80.0, 110.0)], opts())
    assert face.signals["faces"] == 1.0 and empty.signals["faces"] == 0.0
    sparse = SourceAnalysis(duration=end, words=words, faces=[(0.0, 1.0), (100.0, 0.0)])
    assert score_candidates(sparse, [(45.0, 55.0)], opts())[0].signals["faces"] == pytest.approx(0.5)


@pytest.mark.parametrize("speakers, expected", [([0, 1], 1.0), ([0, 0], 0.6), (None, 0.8)])
def test_question_answer_signal(speakers, expected):
    qa = ["what did you learn from that first job",
          "i learned that you have to ship early and listen to customers every week"]  # fmt: skip
    words, _, turns, end = layout(qa, speakers=speakers)
    analysis = SourceAnalysis(duration=end, words=words, turns=turns)
    [moment] = score_candidates(analysis, [(0.0, end)], opts())
    assert moment.signals["qa"] == pytest.approx(expected)
    flat, _, _, end2 = layout(["i did learn from that first job", qa[1]])
    [none] = score_candidates(SourceAnalysis(duration=end2, words=flat), [(0.0, end2)], opts())
    assert none.signals["qa"] == 0.0


def test_hook_signal_prefers_an_opening_hook():
    opening, _, _, _ = layout(["the secret nobody tells you", *filler(5, 1)])
    late, _, _, _ = layout([*filler(5, 1), "the secret nobody tells you"])
    plain, _, _, _ = layout(filler(6, 1))
    values = []
    for words in (opening, late, plain):
        a = SourceAnalysis(duration=words[-1].end, words=words)
        values.append(score_candidates(a, [(0.0, words[-1].end)], opts())[0].signals["hook"])
    assert values[0] > values[1] > values[2] == 0.0


def test_numbers_and_emotion_signals():
    listed, _, _, end = layout(LIST)
    plain, _, _, end2 = layout(filler(5, 2))
    joy, _, _, end3 = layout(["we laughed and smiled with joy", "what a wonderful happy celebration of love"])
    [n1] = score_candidates(SourceAnalysis(duration=end, words=listed), [(0.0, end)], opts())
    [n2] = score_candidates(SourceAnalysis(duration=end2, words=plain), [(0.0, end2)], opts())
    [n3] = score_candidates(SourceAnalysis(duration=end3, words=joy), [(0.0, end3)], opts())
    assert n1.signals["numbers"] > 0.7 and n2.signals["numbers"] < 0.2
    assert n3.signals["emotion"] == 1.0 and n2.signals["emotion"] < 0.5


def test_funny_intent_favours_laughter():
    words, _, _, end = layout(filler(40, 5))
    analysis = SourceAnalysis(duration=end, words=words, events=[(150.0, 152.0, "laughter")])
    top = select_moments(analysis, opts({"clipLength": "short", "customInstructions": "prioritize funny moments"}))[0]
    assert top.signals["events"] > 0
    assert "prompt" not in top.signals  # style words are not topic terms


# --------------------------------------------------------------------------------- genre


def test_infer_genre_interview():
    sents, speakers = [], []
    answers = filler(12, 4)
    for k, q in enumerate(["what did you do before this", "how did you start", "why did you move here",
                           "do you miss it", "what is next for you", "where do you live now"]):  # fmt: skip
        sents += [q, answers[2 * k] + " and " + answers[2 * k + 1]]
        speakers += [0, 1]
    words, _, turns, end = layout(sents, speakers=speakers)
    analysis = SourceAnalysis(duration=end, words=words, turns=turns)
    assert infer_genre(analysis) == "interview"
    assert select_moments(analysis, opts({"clipLength": "short", "genre": "auto"}))  # runs with the inferred genre


def test_infer_genre_conversation_without_questions_is_podcast():
    sents = filler(20, 6)
    words, _, turns, end = layout(sents, speakers=[k % 2 for k in range(20)])
    assert infer_genre(SourceAnalysis(duration=end, words=words, turns=turns)) == "podcast"


def test_infer_genre_single_speaker():
    words, _, _, end = layout(LIST * 4)
    assert infer_genre(SourceAnalysis(duration=end, words=words)) == "tutorial"
    words, _, _, end = layout(filler(20, 7))
    assert infer_genre(SourceAnalysis(duration=end, words=words)) == "podcast"
    words, _, _, end = layout(filler(20, 7), pause=6.0)  # mostly not talking
    assert infer_genre(SourceAnalysis(duration=end, words=words)) == "vlog"


# --------------------------------------------------------------- sentence ends (issue 14)


def test_punctuation_ends_a_sentence_without_a_pause():
    """Whisper writes sentence ends; they split sentences even when no pause follows."""
    text = "Today we talk about hiring. It is hard! Why is it hard? Because people are busy"
    words = [Word(t, round(i * 0.3, 3), round(i * 0.3 + 0.28, 3)) for i, t in enumerate(text.split())]
    spans = [" ".join(w.text for w in words[i:j]) for i, j in sentences(words)]
    assert spans == ["Today we talk about hiring.", "It is hard!", "Why is it hard?", "Because people are busy"]
    # Unpunctuated words (PocketSphinx) still split at pauses only.
    plain = [Word(w.text.strip(".!?").lower(), w.start, w.end) for w in words]
    assert len(sentences(plain)) == 1


def test_clips_start_and_end_on_sentences_when_whisper_punctuates():
    rnd = random.Random(5)
    words, t = [], 0.0
    for _ in range(120):  # sentences of 6-14 words, no pause anywhere: only punctuation marks them
        n = rnd.randint(6, 14)
        for k in range(n):
            text = rnd.choice(FILLER).split()[k % 5] + ("." if k == n - 1 else "")
            words.append(Word(text, round(t, 3), round(t + 0.3, 3)))
            t += 0.34
    analysis = SourceAnalysis(duration=t + 1.0, words=words)
    starts_of = {w.start for i, w in enumerate(words) if i == 0 or words[i - 1].text.endswith(".")}
    ends_of = {w.end for w in words if w.text.endswith(".")}
    for start, end in candidates(analysis, opts(clipLength="short")):
        assert any(abs(start - s) <= 0.16 for s in starts_of), start
        assert any(abs(end - e) <= 0.16 for e in ends_of), end


def test_no_clip_cuts_a_word_even_when_no_sentence_fits():
    """minDuration == maxDuration and not a pause in sight: windows of exactly that length,
    their ends moved off the words they would cut."""
    words = [Word("word", round(i * 0.31, 3), round(i * 0.31 + 0.29, 3)) for i in range(400)]
    analysis = SourceAnalysis(duration=130.0, words=words)
    for start, end in candidates(analysis, opts(minDuration=10, maxDuration=10)):
        for w in words:
            assert not (w.start + 1e-6 < start < w.end - 1e-6), (start, w)
            assert not (w.start + 1e-6 < end < w.end - 1e-6), (end, w)


def test_every_genre_the_api_accepts_has_weights():
    from typing import get_args

    from analysis.moments import GENRE_WEIGHTS
    from reelfarm.options import Genre

    assert set(get_args(Genre)) - {"auto"} == set(GENRE_WEIGHTS)
