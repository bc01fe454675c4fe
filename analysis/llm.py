"""Optional LLM pass over the offline results, through an OpenAI-compatible chat API.

The caller builds an `LlmClient` from an `LlmConfig` (the scheduler makes one from the
settings REELFARM_LLM_BASE_URL, _API_KEY, _MODEL, _TIMEOUT_SECONDS) and uses:

- `rescore(moments, analysis, options)`: the model rates each candidate transcript 0-10 for
  the job's prompt/customInstructions and genre. Blend: score = 0.4 * offline + 0.6 * model
  (RESCORE_MODEL_WEIGHT), rounded to 1 decimal; signals["llm"] = model / 10. The model
  weighs more because it reads meaning (the topic, whether a clip stands alone) where the
  offline signals only see words, timings and sound; the offline part keeps the audio and
  visual evidence. Every candidate must be rated exactly once, or none is used.
  Pass it as `select_moments(..., rescore=lambda ms: client.rescore(ms, analysis, options))`.
- `write_metadata(moment, offline_metadata, options)`: title, viral_hook and hashtags from
  the model, each validated on its own (type, length, hashtag charset) and replaced by the
  offline value when invalid. key_insight, dominant_emotion and viral_score stay offline.
  autoHook false: only hashtags are asked for, and title/viral_hook are left out.

One request per call: POST {base_url}/chat/completions with model, a system and a user
message, temperature 0 and response_format {"type": "json_object"}; an answer whose content
is plain text around a JSON object (or a fenced ```json block) is accepted too. ANY failure
(connection, timeout, HTTP status, a body or content that is not the JSON asked for) is
logged as a warning and the offline result is returned: the LLM never fails a job.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Self

import httpx

from reelfarm.options import ProcessOptions

if TYPE_CHECKING:  # analysis.moments brings NumPy: the scheduler imports this module for LlmConfig alone
    from analysis.moments import Moment, SourceAnalysis

log = logging.getLogger(__name__)

DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_TIMEOUT = 30.0

RESCORE_MODEL_WEIGHT = 0.6
MAX_TRANSCRIPT_CHARS = 1500  # per candidate in a rescore request
MAX_METADATA_TRANSCRIPT_CHARS = 4000
TITLE_CHARS = 60  # longer titles are cut at a word; over TITLE_REJECT_CHARS they are rejected
TITLE_REJECT_CHARS = 120
HOOK_MAX_CHARS = 160
HOOK_MAX_WORDS = 25
MAX_HASHTAGS = 6
_HASHTAG = re.compile(r"[a-z0-9_]{2,30}")

RESCORE_SYSTEM = (
    "You rate candidate moments of a long video as stand-alone short vertical clips. "
    "Transcripts come from offline speech recognition: lowercase, no punctuation and many "
    "misheard words, so judge the topic, the hook and whether the clip makes sense on its own, "
    "not the spelling. Follow the user's instructions about what to favour. "
    "Answer with one JSON object only."
)
METADATA_SYSTEM = (
    "You write packaging for a short vertical video clip. The transcript comes from offline "
    "speech recognition: lowercase, no punctuation, some misheard words; infer the intended "
    "words. Be accurate to what is said; no clickbait that the clip does not deliver. "
    "Answer with one JSON object only."
)


@dataclass(frozen=True)
class LlmConfig:
    """Where the optional LLM is; no base_url: offline only."""

    base_url: str | None = None
    api_key: str | None = None
    model: str = DEFAULT_MODEL
    timeout_seconds: float = 20.0


class LlmError(Exception):
    """The model could not be reached or did not answer as asked."""


class LlmClient:
    """An OpenAI-compatible chat completions client (one JSON-mode request per call).

    `base_url` is the API root that /chat/completions hangs off (e.g. https://host/v1); a
    URL already ending in /chat/completions is used as is. `timeout` (seconds) bounds
    connecting, sending, each read and waiting for a pooled connection.
    """

    def __init__(self, base_url: str, api_key: str | None = None, model: str = DEFAULT_MODEL,
                 timeout: float = DEFAULT_TIMEOUT, *, transport: httpx.BaseTransport | None = None):  # fmt: skip
        if not base_url:
            raise ValueError("base_url required")
        url = base_url.rstrip("/")
        self.url = url if url.endswith("/chat/completions") else url + "/chat/completions"
        self.model = model or DEFAULT_MODEL
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.Client(timeout=httpx.Timeout(timeout), headers=headers, transport=transport)

    @classmethod
    def from_config(cls, config: LlmConfig | None) -> LlmClient | None:
        """A client for `config`; None without a base URL (offline only)."""
        base_url = ((config.base_url if config else None) or "").strip()
        if not base_url:
            return None
        return cls(base_url, config.api_key or None, config.model or DEFAULT_MODEL, config.timeout_seconds)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- transport
    def complete_json(self, system: str, user: str) -> dict:
        """The model's answer as a JSON object; LlmError on any failure."""
        body = {
            "model": self.model,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "temperature": 0,
            "response_format": {"type": "json_object"},
        }
        try:
            response = self._http.post(self.url, json=body)
        except httpx.TimeoutException as exc:
            raise LlmError(f"timed out ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise LlmError(f"request failed: {exc!r}") from exc
        if response.status_code != 200:
            raise LlmError(f"HTTP {response.status_code}: {response.text[:200]!r}")
        try:
            data = response.json()
        except ValueError as exc:
            raise LlmError(f"response is not JSON: {response.text[:200]!r}") from exc
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise LlmError("response has no choices[0].message.content") from exc
        if not isinstance(content, str):
            raise LlmError("message content is not text")
        return parse_json_object(content)

    # -- moment rescoring
    def rescore(self, moments: list[Moment], analysis: SourceAnalysis, options: ProcessOptions) -> list[Moment]:
        """Moments with the model's rating blended in (same order); the input on any failure."""
        if not moments:
            return moments
        try:
            answer = self.complete_json(RESCORE_SYSTEM, _rescore_request(moments, analysis, options))
            ratings = validate_ratings(answer, len(moments))
        except Exception as exc:  # noqa: BLE001 - the LLM must never fail a job
            log.warning("LLM rescore failed, keeping the offline scores: %s", exc)
            return moments
        out = []
        for moment, rating in zip(moments, ratings):
            blended = (1 - RESCORE_MODEL_WEIGHT) * moment.score + RESCORE_MODEL_WEIGHT * rating
            out.append(replace(moment, score=round(blended, 1),
                               signals={**moment.signals, "llm": round(rating / 10.0, 4)}))  # fmt: skip
        return out

    # -- metadata
    def write_metadata(self, moment: Moment, offline_metadata: dict, options: ProcessOptions) -> dict:
        """offline_metadata with the model's title/viral_hook/hashtags where they validate."""
        auto_hook = options.autoHook
        result = dict(offline_metadata)
        if not auto_hook:
            result.pop("title", None)
            result.pop("viral_hook", None)
        try:
            answer = self.complete_json(METADATA_SYSTEM, _metadata_request(moment, offline_metadata, options, auto_hook))
        except Exception as exc:  # noqa: BLE001 - the LLM must never fail a job
            log.warning("LLM metadata failed, keeping the offline metadata: %s", exc)
            return result
        rejected = []
        if auto_hook:
            title = clean_title(answer.get("title"))
            if title is not None:
                result["title"] = title
            else:
                rejected.append("title")
            hook = clean_hook(answer.get("viral_hook"))
            if hook is not None:
                result["viral_hook"] = hook
            else:
                rejected.append("viral_hook")
        tags = clean_hashtags(answer.get("hashtags"))
        if tags is not None:
            result["hashtags"] = tags
        else:
            rejected.append("hashtags")
        if rejected:
            log.warning("LLM metadata: invalid %s, kept the offline value(s)", ", ".join(rejected))
        return result


# ---------------------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------------------


def _instructions(options: ProcessOptions) -> str:
    parts = [options.prompt.strip(), options.customInstructions.strip()]
    return " ".join(p for p in parts if p)


def _genre(analysis: SourceAnalysis | None, options: ProcessOptions) -> str:
    from analysis.moments import resolve_genre

    try:
        return resolve_genre(analysis, options) if analysis is not None else options.genre
    except Exception:  # noqa: BLE001 - only context for the model
        return options.genre


def _rescore_request(moments: list[Moment], analysis: SourceAnalysis, options: ProcessOptions) -> str:
    payload = {
        "task": "Rate each candidate 0-10 as a short clip: 10 = a clip people would stop scrolling for "
                "and that matches the instructions; 0 = off-topic or meaningless on its own.",
        "genre": _genre(analysis, options),
        "instructions": _instructions(options) or "none: pick the most engaging moments",
        "candidates": [
            {"id": k, "seconds": round(m.end - m.start, 1), "transcript": m.transcript[:MAX_TRANSCRIPT_CHARS]}
            for k, m in enumerate(moments)
        ],
        "answer_format": {"ratings": [{"id": "candidate id (integer)", "score": "number 0-10"}]},
        "rules": "Rate every candidate exactly once. Reply with the JSON object only.",
    }  # fmt: skip
    return json.dumps(payload, ensure_ascii=False)


def _metadata_request(moment: Moment, offline: dict, options: ProcessOptions, auto_hook: bool) -> str:
    fields: dict[str, str] = {}
    if auto_hook:
        fields["title"] = f"string, at most {TITLE_CHARS} characters, sentence case, no hashtags"
        fields["viral_hook"] = "string, the opening line that makes people watch, at most 12 words"
    fields["hashtags"] = "array of 2-5 lowercase strings without '#' or spaces, e.g. [\"hiring\", \"startups\"]"
    payload = {
        "transcript": moment.transcript[:MAX_METADATA_TRANSCRIPT_CHARS],
        "genre": options.genre,
        "instructions": _instructions(options) or "none",
        "offline_draft": {k: offline[k] for k in ("title", "viral_hook", "hashtags", "key_insight") if k in offline},
        "answer_format": fields,
        "rules": "Reply with a JSON object with exactly the fields in answer_format.",
    }
    return json.dumps(payload, ensure_ascii=False)


# ---------------------------------------------------------------------------------------
# Parsing and validation
# ---------------------------------------------------------------------------------------

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


def parse_json_object(content: str) -> dict:
    """The JSON object in a model's answer: the whole text, a ```json fenced block, or the
    first {...} inside plain text. LlmError when there is none."""
    text = content.strip()
    tries = [text, *(m.group(1).strip() for m in _FENCE.finditer(text))]
    for candidate in tries:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    raise LlmError(f"no JSON object in the answer: {text[:200]!r}")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validate_ratings(answer: dict, count: int) -> list[float]:
    """Scores 0..10 for ids 0..count-1 from {"ratings": [{"id", "score"}...]}, all present once."""
    ratings = answer.get("ratings") if isinstance(answer, dict) else None
    if not isinstance(ratings, list):
        raise LlmError("answer has no ratings list")
    scores: dict[int, float] = {}
    for item in ratings:
        if not isinstance(item, dict):
            raise LlmError("a rating is not an object")
        rid, score = item.get("id"), item.get("score")
        if not isinstance(rid, int) or isinstance(rid, bool) or not 0 <= rid < count:
            raise LlmError(f"bad candidate id {rid!r}")
        if not _is_number(score) or not 0 <= score <= 10:
            raise LlmError(f"bad score {score!r} for candidate {rid}")
        if rid in scores:
            raise LlmError(f"candidate {rid} rated twice")
        scores[rid] = float(score)
    if len(scores) != count:
        raise LlmError(f"{count - len(scores)} candidate(s) not rated")
    return [scores[k] for k in range(count)]


def _one_line(value) -> str | None:
    if not isinstance(value, str):
        return None
    text = " ".join(value.split()).strip().strip('"').strip()
    return text or None


def clean_title(value) -> str | None:
    """A title of 3..TITLE_CHARS characters (longer ones cut at a word, up to
    TITLE_REJECT_CHARS); None when unusable."""
    text = _one_line(value)
    if text is None or len(text) < 3 or len(text) > TITLE_REJECT_CHARS:
        return None
    if len(text) > TITLE_CHARS:
        text = text[: TITLE_CHARS + 1].rsplit(" ", 1)[0].rstrip(" ,;:-") or text[:TITLE_CHARS]
    return text


def clean_hook(value) -> str | None:
    text = _one_line(value)
    if text is None or len(text) < 3 or len(text) > HOOK_MAX_CHARS or len(text.split()) > HOOK_MAX_WORDS:
        return None
    return text


def clean_hashtags(value) -> list[str] | None:
    """Lowercase, '#' and spaces removed, [a-z0-9_]{2,30}, deduplicated, at most
    MAX_HASHTAGS; invalid entries dropped; None when nothing valid is left."""
    if not isinstance(value, list):
        return None
    tags: list[str] = []
    for item in value:
        if not isinstance(item, str):
            continue
        tag = "".join(item.strip().lstrip("#").lower().split())
        if _HASHTAG.fullmatch(tag) and tag not in tags:
            tags.append(tag)
    return tags[:MAX_HASHTAGS] or None
