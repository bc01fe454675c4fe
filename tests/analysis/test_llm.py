"""The LLM pass against a real OpenAI-compatible HTTP server on 127.0.0.1 that the test scripts."""

from __future__ import annotations

import json
import logging
import time

import pytest

from analysis.clip_metadata import clip_metadata
from analysis.llm import LlmClient, LlmConfig, LlmError, clean_hashtags, parse_json_object
from analysis.moments import SourceAnalysis, select_moments
from harness.json_server import JsonPostServer, chat_completion
from harness.scripted_speech import layout, opts

API_KEY = "sk-test-123"
MODEL = "test-model-1"

FILLER = [
    "the train was late again so we walked home",
    "the library moved to the building by the river",
    "we stayed at the cabin near the lake for a while",
    "she painted the kitchen a pale shade of green",
]
HOOKS = [
    "the secret nobody tells you is that it is simple",
    "what is the biggest mistake people make",
    "the truth is most people quit way too early",
    "here's why you won't believe how often that happens",
]
COFFEE = [
    "i drink coffee every morning before work",
    "the best coffee comes from small farms in the mountains",
    "cold brew coffee is smoother than hot coffee and less bitter",
    "we roast our own coffee beans at home in a small pan",
]


@pytest.fixture
def analysis():
    words, _, _, end = layout(FILLER * 4 + HOOKS + FILLER * 4 + COFFEE + FILLER * 4)
    return SourceAnalysis(duration=end, words=words)


OPTIONS = opts({"clipLength": "short", "numClips": 2, "genre": "podcast"})


class FakeLlm(JsonPostServer):
    """A chat-completions server. `script` is a list of answers used in order (the last one
    repeats): a callable(request_json) -> answer, or a dict with status / body (dict -> JSON,
    str -> raw) / content (wrapped as a chat completion) / delay."""

    def __init__(self):
        self.script: list = []
        super().__init__(self._answer)
        self.base_url = self.url + "/v1"

    def _answer(self, path: str, body) -> tuple[int, object]:
        step = self.script[min(len(self.requests) - 1, len(self.script) - 1)]
        if callable(step):
            step = step(body)
        time.sleep(step.get("delay", 0))
        if "content" in step:
            return step.get("status", 200), chat_completion(step["content"], MODEL)
        return step.get("status", 200), step.get("body", "")


@pytest.fixture
def llm():
    server = FakeLlm()
    yield server
    server.close()


@pytest.fixture
def client(llm):
    with LlmClient(llm.base_url, API_KEY, MODEL, timeout=2.0) as c:
        yield c


def user_payload(request_json) -> dict:
    return json.loads(request_json["messages"][1]["content"])


def assert_request_shape(request):
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == f"Bearer {API_KEY}"
    body = request["json"]
    assert body["model"] == MODEL
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert all(isinstance(m["content"], str) and m["content"] for m in body["messages"])
    assert body["response_format"] == {"type": "json_object"}


def rate_last(request_json):
    """A model that disagrees with the offline order: 10 for the last candidate it is shown
    (the offline pool's weakest), 1 for the rest."""
    candidates = user_payload(request_json)["candidates"]
    ratings = [{"id": c["id"], "score": 10 if c["id"] == len(candidates) - 1 else 1} for c in candidates]
    return {"content": json.dumps({"ratings": ratings})}


def last_shown(llm) -> str:
    return user_payload(llm.requests[0]["json"])["candidates"][-1]["transcript"]


# --------------------------------------------------------------------------------- rescore


def test_good_ratings_change_the_ranking(llm, client, analysis):
    llm.script = [rate_last]
    offline = select_moments(analysis, OPTIONS)
    ranked = select_moments(analysis, OPTIONS, rescore=lambda ms: client.rescore(ms, analysis, OPTIONS))
    assert ranked[0].transcript == last_shown(llm)
    assert ranked[0].transcript not in [m.transcript for m in offline]
    assert ranked[0].signals["llm"] == 1.0
    # blend: 0.4 * offline + 0.6 * model
    [request] = llm.requests
    assert_request_shape(request)
    payload = user_payload(request["json"])
    assert len(payload["candidates"]) == 3 * OPTIONS.numClips
    assert payload["genre"] == "podcast"
    sent = {c["transcript"]: c["id"] for c in payload["candidates"]}
    assert ranked[0].transcript in sent


def test_blend_is_documented_weights(llm, client, analysis):
    llm.script = [lambda body: {"content": json.dumps(
        {"ratings": [{"id": c["id"], "score": 5} for c in user_payload(body)["candidates"]]})}]  # fmt: skip
    pool = select_moments(analysis, opts(OPTIONS, numClips=4))
    rescored = client.rescore(pool, analysis, OPTIONS)
    for before, after in zip(pool, rescored):
        assert after.score == round(0.4 * before.score + 0.6 * 5, 1)
        assert (after.start, after.end, after.transcript) == (before.start, before.end, before.transcript)


def test_prompt_reaches_the_model(llm, client, analysis):
    llm.script = [rate_last]
    options = opts(OPTIONS, prompt="Focus on moments about coffee", customInstructions="prioritize funny moments")
    select_moments(analysis, options, rescore=lambda ms: client.rescore(ms, analysis, options))
    instructions = user_payload(llm.requests[0]["json"])["instructions"]
    assert "coffee" in instructions and "funny" in instructions


@pytest.mark.parametrize(
    "step",
    [
        {"status": 500, "body": {"error": {"message": "boom"}}},
        {"status": 429, "body": {"error": {"message": "slow down"}}},
        {"body": "this is not json at all"},
        {"content": "I'm sorry, I can't rate these."},
        {"content": json.dumps({"ratings": [{"id": 0, "score": 7}]})},  # not every candidate
        {"content": json.dumps({"ratings": "all good"})},
        {"content": json.dumps({"scores": [1, 2, 3]})},
        {"body": {"choices": []}},
        {"delay": 1.5, "content": json.dumps({"ratings": []})},  # longer than the client timeout
    ],
    ids=["500", "429", "garbage-body", "refusal", "partial", "wrong-type", "wrong-key", "no-choices", "timeout"],
)
def test_failures_fall_back_to_offline(llm, analysis, step, caplog):
    llm.script = [step]
    offline = select_moments(analysis, OPTIONS)
    with LlmClient(llm.base_url, API_KEY, MODEL, timeout=0.5) as client, caplog.at_level(logging.WARNING):
        started = time.monotonic()
        ranked = select_moments(analysis, OPTIONS, rescore=lambda ms: client.rescore(ms, analysis, OPTIONS))
        assert time.monotonic() - started < 1.4
        meta = client.write_metadata(offline[0], clip_metadata(offline[0], analysis, opts()), opts())
    assert ranked == offline
    assert meta == clip_metadata(offline[0], analysis, opts())
    assert len(llm.requests) == 2
    assert any("LLM" in r.message for r in caplog.records if r.levelno == logging.WARNING)


def test_out_of_range_and_duplicate_ratings_are_rejected(llm, client, analysis):
    pool = select_moments(analysis, opts(OPTIONS, numClips=2))
    for ratings in ([{"id": 0, "score": 11}, {"id": 1, "score": 2}],
                    [{"id": 0, "score": 1}, {"id": 0, "score": 2}],
                    [{"id": 0, "score": True}, {"id": 1, "score": 2}],
                    [{"id": "0", "score": 1}, {"id": 1, "score": 2}]):  # fmt: skip
        llm.script = [{"content": json.dumps({"ratings": ratings})}]
        llm.requests.clear()
        assert client.rescore(pool, analysis, OPTIONS) == pool


def test_unreachable_server_falls_back():
    words, _, _, end = layout(FILLER * 10)
    analysis = SourceAnalysis(duration=end, words=words)
    offline = select_moments(analysis, OPTIONS)
    with LlmClient("http://127.0.0.1:9/v1", API_KEY, MODEL, timeout=0.5) as client:
        assert select_moments(analysis, OPTIONS, rescore=lambda ms: client.rescore(ms, analysis, OPTIONS)) == offline


def test_plain_text_around_json_is_accepted(llm, client, analysis):
    def chatty(body):
        answer = rate_last(body)["content"]
        return {"content": "Sure! Here are the ratings:\n```json\n" + answer + "\n```\nEnjoy."}

    llm.script = [chatty]
    ranked = select_moments(analysis, OPTIONS, rescore=lambda ms: client.rescore(ms, analysis, OPTIONS))
    assert ranked[0].transcript == last_shown(llm)


def test_parse_json_object():
    assert parse_json_object('{"a": 1}') == {"a": 1}
    assert parse_json_object('Answer: {"a": {"b": [1, 2]}} -- done') == {"a": {"b": [1, 2]}}
    assert parse_json_object("```json\n{\"a\": 2}\n```") == {"a": 2}
    assert parse_json_object('text {not json} then {"a": 3}') == {"a": 3}
    with pytest.raises(LlmError):
        parse_json_object("[1, 2, 3]")


# --------------------------------------------------------------------------------- metadata


def _moment_and_offline(analysis):
    moment = select_moments(analysis, OPTIONS)[0]
    return moment, clip_metadata(moment, analysis, opts())


def test_good_metadata_replaces_title_hook_and_hashtags(llm, client, analysis):
    moment, offline = _moment_and_offline(analysis)
    llm.script = [{"content": json.dumps({"title": "The one secret most people never hear",
                                          "viral_hook": "Nobody tells you this, but it is simple.",
                                          "hashtags": ["#Advice", "life lessons", "advice", "#", 7]})}]  # fmt: skip
    meta = client.write_metadata(moment, offline, opts())
    assert meta["title"] == "The one secret most people never hear"
    assert meta["viral_hook"] == "Nobody tells you this, but it is simple."
    assert meta["hashtags"] == ["advice", "lifelessons"]
    for key in ("key_insight", "dominant_emotion", "viral_score"):
        assert meta[key] == offline[key]
    [request] = llm.requests
    assert_request_shape(request)
    payload = user_payload(request["json"])
    assert payload["transcript"] == moment.transcript
    assert set(payload["answer_format"]) == {"title", "viral_hook", "hashtags"}


def test_invalid_fields_fall_back_one_by_one(llm, client, analysis):
    moment, offline = _moment_and_offline(analysis)
    llm.script = [{"content": json.dumps({"title": "x" * 500, "viral_hook": 42, "hashtags": ["cold_brew"]})}]
    meta = client.write_metadata(moment, offline, opts())
    assert meta["title"] == offline["title"]
    assert meta["viral_hook"] == offline["viral_hook"]
    assert meta["hashtags"] == ["cold_brew"]
    llm.script = [{"content": json.dumps({"title": "A good title that runs on a little too long for the short limit here",
                                          "hashtags": "coffee"})}]  # fmt: skip
    llm.requests.clear()
    meta = client.write_metadata(moment, offline, opts())
    assert len(meta["title"]) <= 60 and meta["title"].startswith("A good title")
    assert meta["viral_hook"] == offline["viral_hook"] and meta["hashtags"] == offline["hashtags"]


def test_auto_hook_false(llm, client, analysis):
    moment = select_moments(analysis, OPTIONS)[0]
    offline = clip_metadata(moment, analysis, opts({"autoHook": False}))
    llm.script = [{"content": json.dumps({"title": "Ignored", "viral_hook": "Ignored too", "hashtags": ["coffee"]})}]
    meta = client.write_metadata(moment, offline, opts({"autoHook": False}))
    assert "title" not in meta and "viral_hook" not in meta
    assert meta["hashtags"] == ["coffee"]
    assert set(user_payload(llm.requests[0]["json"])["answer_format"]) == {"hashtags"}
    # a full offline dict is trimmed too
    llm.script = [{"status": 500, "body": "down"}]
    full = clip_metadata(moment, analysis, opts())
    assert "title" not in client.write_metadata(moment, full, opts({"autoHook": False}))


def test_clean_hashtags():
    assert clean_hashtags(["#Hiring", "start ups", "hiring", "ok!", "a", "#"]) == ["hiring", "startups"]
    assert clean_hashtags("hiring") is None
    assert clean_hashtags([1, 2]) is None


def test_no_api_key_sends_no_authorization(llm, analysis):
    llm.script = [rate_last]
    with LlmClient(llm.base_url + "/chat/completions", None, MODEL, timeout=2.0) as client:
        ranked = select_moments(analysis, OPTIONS, rescore=lambda ms: client.rescore(ms, analysis, OPTIONS))
    assert ranked[0].transcript == last_shown(llm)
    assert "Authorization" not in llm.requests[0]["headers"]
    assert llm.requests[0]["path"] == "/v1/chat/completions"


def test_client_from_its_config():
    assert LlmClient.from_config(None) is None
    assert LlmClient.from_config(LlmConfig()) is None  # no base URL: offline only
    client = LlmClient.from_config(LlmConfig(base_url="http://127.0.0.1:1/v1/", api_key="k", model="m1"))
    try:
        assert client.url == "http://127.0.0.1:1/v1/chat/completions" and client.model == "m1"
        assert client._http.headers["Authorization"] == "Bearer k"
    finally:
        client.close()
