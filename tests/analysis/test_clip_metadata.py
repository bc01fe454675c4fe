"""Offline clip metadata over scripted transcripts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from analysis.clip_metadata import clip_metadata, dominant_emotion, keyphrases
from analysis.moments import (
    SourceAnalysis,
    score_candidates,
    select_moments,
    tokens,
)
from harness.scripted_speech import layout, opts

FILLER = [
    "the train was late again so we walked home",
    "the library moved to the building by the river",
    "we stayed at the cabin near the lake for a while",
]
HIRING = [
    "hiring is the hardest part of running startups",
    "most startups make hiring mistakes in the first year",
    "the secret nobody tells you is to hire slowly and fire quickly",
    "great engineers want to work with other great engineers",
    "so when hiring for startups look for people who learn fast",
]
JOY = [
    "we laughed and smiled with joy at the party",
    "what a wonderful happy celebration of love and friends",
    "the kids were so happy and cheerful all day",
]


def clip_of(sentences, options=None, before=None):
    """A clip over `sentences` inside a longer source (filler before and after)."""
    pre, _, _, start = layout(before or FILLER)
    mid, _, _, end = layout(sentences, start=start)
    post, _, _, stop = layout(FILLER, start=end)
    analysis = SourceAnalysis(duration=stop, words=pre + mid + post)
    [moment] = score_candidates(analysis, [(start - 0.2, end - 0.4)], opts(options))
    return moment, analysis


def test_fields_and_shapes():
    moment, analysis = clip_of(HIRING)
    meta = clip_metadata(moment, analysis, opts())
    assert list(meta) == ["title", "viral_hook", "key_insight", "dominant_emotion", "hashtags", "viral_score"]
    assert meta["viral_score"] == moment.score
    assert 0 < len(meta["title"]) <= 60 and meta["title"][0].isupper()
    # The hook is a whole sentence of the clip (issue 14: never a sentence cut short).
    assert meta["viral_hook"].lower() in HIRING and meta["viral_hook"][0].isupper()
    assert meta["key_insight"][0].isupper()
    assert isinstance(meta["hashtags"], list) and 1 <= len(meta["hashtags"]) <= 4
    # only the clip's words: nothing from the filler around it
    clip_text = " ".join(HIRING).lower()
    for field in ("title", "viral_hook", "key_insight"):
        assert meta[field].lower() in clip_text


def test_hashtags_are_keyphrases_of_the_clip():
    moment, analysis = clip_of(HIRING)
    meta = clip_metadata(moment, analysis, opts())
    assert {"hiring", "startups"} <= set(meta["hashtags"])
    clip_tokens = tokens(" ".join(HIRING))
    joined = {clip_tokens[i] for i in range(len(clip_tokens))} | {
        clip_tokens[i] + clip_tokens[i + 1] for i in range(len(clip_tokens) - 1)
    }
    for tag in meta["hashtags"]:
        assert tag == tag.lower() and " " not in tag and not tag.startswith("#")
        assert tag in joined  # one word, or two adjacent words of the clip
    assert not {"train", "library", "river", "cabin"} & set(meta["hashtags"])


def test_hook_and_title_use_the_hook_lexicon():
    moment, analysis = clip_of(HIRING)
    meta = clip_metadata(moment, analysis, opts())
    assert meta["viral_hook"].lower().startswith("the secret nobody tells you")
    assert meta["title"].lower().startswith("the secret nobody tells you")


def test_key_insight_is_the_sentence_with_most_keyphrase_weight():
    moment, analysis = clip_of(HIRING)
    insight = clip_metadata(moment, analysis, opts())["key_insight"].lower()
    assert insight in [s for s in HIRING]
    assert "hiring" in insight and "startups" in insight


def test_dominant_emotion():
    moment, analysis = clip_of(JOY)
    assert clip_metadata(moment, analysis, opts())["dominant_emotion"] == "joy"
    moment, analysis = clip_of(["the library moved to the building by the river"] * 3)
    assert clip_metadata(moment, analysis, opts())["dominant_emotion"] == "neutral"
    assert dominant_emotion(tokens("i hate this it makes me furious and angry so angry")) == "anger"
    assert dominant_emotion(tokens("terrified of the dark afraid scared of ghosts and horror")) == "fear"
    assert dominant_emotion([]) == "neutral"


def test_auto_hook_false_leaves_out_title_and_hook():
    moment, analysis = clip_of(HIRING)
    meta = clip_metadata(moment, analysis, opts({"autoHook": False}))
    assert "title" not in meta and "viral_hook" not in meta
    assert set(meta) == {"key_insight", "dominant_emotion", "hashtags", "viral_score"}
    assert meta["hashtags"]
    assert "title" in clip_metadata(moment, analysis, opts({"autoHook": True}))


def test_deterministic_in_process_and_across_hash_seeds():
    moment, analysis = clip_of(HIRING)
    first = clip_metadata(moment, analysis, opts())
    assert clip_metadata(moment, analysis, opts()) == first
    code = (
        f"import sys, json; sys.path[:0] = [{str(Path(__file__).parent)!r}, {str(Path(__file__).parents[1])!r}];"
        "from test_clip_metadata import clip_of, HIRING;"
        "from analysis.clip_metadata import clip_metadata; from harness.scripted_speech import opts;"
        "m, a = clip_of(HIRING); print(json.dumps(clip_metadata(m, a, opts())))"
    )
    outs = set()
    for seed in ("1", "2"):
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={"PYTHONHASHSEED": seed, "PATH": ""})  # fmt: skip
        outs.add(run.stdout)
    assert len(outs) == 1


def test_empty_clip():
    analysis = SourceAnalysis(duration=30.0, words=[])
    [moment] = score_candidates(analysis, [(0.0, 30.0)], opts())
    meta = clip_metadata(moment, analysis, opts())
    assert meta["hashtags"] == [] and meta["dominant_emotion"] == "neutral" and meta["title"]


def test_metadata_for_selected_moments():
    words, _, _, end = layout(FILLER * 5 + HIRING + FILLER * 5)
    analysis = SourceAnalysis(duration=end, words=words)
    moments = select_moments(analysis, opts({"clipLength": "short", "numClips": 3, "prompt": "hiring"}))
    metas = [clip_metadata(m, analysis, opts()) for m in moments]
    assert "hiring" in metas[0]["hashtags"]
    for m, meta in zip(moments, metas):
        assert meta["viral_score"] == m.score


@pytest.mark.parametrize("text", ["", "um um um", "a a a a"])
def test_keyphrases_on_degenerate_text(text):
    assert keyphrases([tokens(text)]) == []
