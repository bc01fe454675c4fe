"""Translating a campaign script into the other requested languages.

No offline machine translation exists for ja/ko/es/de/fr/zh in any registry package, so a
translation comes from a service the operator configures, or not at all (never faked):

- `LibreTranslateTranslator`: a LibreTranslate-compatible server. One POST
  {REELFARM_TRANSLATE_URL}/translate with {"q": [lines], "source", "target", "format": "text",
  "api_key" (REELFARM_TRANSLATE_API_KEY, when set)} -> {"translatedText": [lines]}.
- `LlmTranslator`: the configured OpenAI-compatible LLM (analysis.llm.LlmClient, the one clip
  metadata uses): one JSON-mode request -> {"translations": [lines]}.

Either answer must hold as many non-empty lines as were sent, in order, and be written in the
target's script (CJK for ja/zh/ko, not CJK otherwise) and not be the source text handed
back; anything else raises `TranslationError` with a readable reason.

`translator_from_settings(settings)` picks one (REELFARM_TRANSLATOR: "auto" = LibreTranslate
when REELFARM_TRANSLATE_URL is set, else the LLM when REELFARM_LLM_BASE_URL is set, else
none) and returns None when there is none. Then only the page's own language can be voiced:
`languages_needing_translation(requested, page_language)` names the others and
`require_translator(...)` raises `NoTranslatorError` (the API answers 400 with its message).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol, Self, runtime_checkable

import httpx

from analysis.campaigns.script import (
    LANGUAGE_NAMES,
    Script,
    base_language,
    estimate_seconds,
    script_share,
)

if TYPE_CHECKING:
    from analysis.llm import LlmClient
    from reelfarm.settings import Settings

log = logging.getLogger(__name__)

MIN_SCRIPT_SHARE = 0.5  # of a translation's letters in the target's script


class TranslationError(Exception):
    """A translator failed or answered wrongly (the message says which and why)."""


class NoTranslatorError(ValueError):
    """Languages were asked for that need a translator, and none is configured."""

    def __init__(self, languages: Sequence[str], page_language: str):
        self.languages = list(languages)
        self.page_language = page_language
        names = ", ".join(self.languages)
        super().__init__(
            f"cannot make videos in {names}: the page is in {page_language}, translating needs a translator and "
            "none is configured (set REELFARM_TRANSLATE_URL to a LibreTranslate-compatible server or "
            f"REELFARM_LLM_BASE_URL to an OpenAI-compatible LLM), so only {page_language} is available"
        )


@runtime_checkable
class Translator(Protocol):
    """Translates lines of text; same count and order back, or TranslationError."""

    name: str

    def translate(self, lines: Sequence[str], source: str, target: str) -> list[str]: ...


def languages_needing_translation(requested: Iterable[str], page_language: str) -> list[str]:
    """The requested languages (primary subtags, first occurrence order) other than the page's."""
    page = base_language(page_language)
    out: list[str] = []
    for tag in requested:
        lang = base_language(tag)
        if lang and lang != page and lang not in out:
            out.append(lang)
    return out


def require_translator(requested: Iterable[str], page_language: str, translator: Translator | None) -> list[str]:
    """The languages that will be translated; NoTranslatorError when some need a translator
    and there is none."""
    needed = languages_needing_translation(requested, page_language)
    if needed and translator is None:
        raise NoTranslatorError(needed, base_language(page_language))
    return needed


def check_translation(lines: Sequence[str], translations, source: str, target: str, who: str) -> list[str]:
    """`translations` as a list of strings when it is a faithful-looking answer for `lines`."""
    if not isinstance(translations, list):
        raise TranslationError(f"{who} did not answer a list of translations")
    if len(translations) != len(lines):
        raise TranslationError(f"{who} answered {len(translations)} line(s) for {len(lines)}")
    out = []
    for k, item in enumerate(translations):
        if not isinstance(item, str) or not item.strip():
            raise TranslationError(f"{who} answered an empty or non-text translation for line {k + 1}")
        out.append(" ".join(item.split()))
    if base_language(source) != base_language(target):
        joined = " ".join(out)
        letters = [ch for ch in joined if ch.isalpha()]
        if letters and script_share(joined, target) < MIN_SCRIPT_SHARE:
            raise TranslationError(f"{who}'s answer is not written in {_name(target)}")
        if len(lines) > 0 and [_fold(x) for x in out] == [_fold(x) for x in lines] and any(
                len(x.split()) > 2 or len(x) > 12 for x in lines):  # fmt: skip
            raise TranslationError(f"{who} returned the {_name(source)} text untranslated")
    return out


def _fold(text: str) -> str:
    return " ".join(text.casefold().split())


def _name(lang: str) -> str:
    code = base_language(lang)
    return LANGUAGE_NAMES.get(code, code)


def translate_script(script: Script, target: str, translator: Translator) -> Script:
    """`script` in `target`: every line translated in one call, the duration re-estimated
    for the target's speaking rate (it can leave the 30-45 s window; the voiceover measures)."""
    lang = base_language(target)
    if lang == script.language:
        return script
    lines = script.lines
    out = translator.translate(lines, script.language, lang)
    if len(out) != len(lines):  # a Translator that did not check
        raise TranslationError(f"{translator.name} answered {len(out)} line(s) for {len(lines)}")
    return replace(
        script, language=lang, title=out[0], sentences=list(out[1:-1]), call_to_action=out[-1],
        estimated_seconds=estimate_seconds(out, lang), source=f"{script.source}+{translator.name}",
        translated_from=script.language,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------
# LibreTranslate
# ---------------------------------------------------------------------------------------


class LibreTranslateTranslator:
    """A LibreTranslate-compatible server (POST {url}/translate, the lines as a list in "q").

    `language_codes` maps our codes to the server's where they differ (e.g. {"zh": "zh-Hans"}
    for LibreTranslate 1.6+).
    """

    name = "libretranslate"

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 30.0, *,
                 language_codes: dict[str, str] | None = None, transport: httpx.BaseTransport | None = None):  # fmt: skip
        if not url or not url.strip():
            raise ValueError("LibreTranslate URL required")
        root = url.strip().rstrip("/")
        self.url = root if root.endswith("/translate") else root + "/translate"
        self.api_key = api_key or None
        self.language_codes = dict(language_codes or {})
        self._http = httpx.Client(timeout=httpx.Timeout(timeout), transport=transport,
                                  headers={"Accept": "application/json"})  # fmt: skip

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _code(self, lang: str) -> str:
        code = base_language(lang)
        return self.language_codes.get(code, code)

    def translate(self, lines: Sequence[str], source: str, target: str) -> list[str]:
        lines = list(lines)
        if not lines:
            return []
        who = f"LibreTranslate ({self.url})"
        body: dict = {"q": lines, "source": self._code(source), "target": self._code(target), "format": "text"}
        if self.api_key:
            body["api_key"] = self.api_key
        try:
            response = self._http.post(self.url, json=body)
        except httpx.TimeoutException as exc:
            raise TranslationError(f"{who} timed out translating to {_name(target)}") from exc
        except httpx.HTTPError as exc:
            raise TranslationError(f"{who} could not be reached: {exc}") from exc
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code != 200:
            error = data.get("error") if isinstance(data, dict) else None
            detail = error if isinstance(error, str) and error else response.text[:200]
            raise TranslationError(
                f"{who} refused {_name(source)} -> {_name(target)}: HTTP {response.status_code}: {detail}"
            )
        if not isinstance(data, dict) or "translatedText" not in data:
            raise TranslationError(f"{who} answered without translatedText: {response.text[:200]!r}")
        translated = data["translatedText"]
        if isinstance(translated, str) and len(lines) == 1:
            translated = [translated]
        return check_translation(lines, translated, source, target, who)


# ---------------------------------------------------------------------------------------
# The LLM
# ---------------------------------------------------------------------------------------

TRANSLATE_SYSTEM = (
    "You translate the lines of a short video's voice-over. Keep the meaning, the order and the "
    "number of lines: exactly one translation per line. Write natural spoken text in the target "
    "language; keep brand names, domain names and numbers as they are. Answer with one JSON object only."
)


class LlmTranslator:
    """The configured OpenAI-compatible LLM, one JSON-mode request per call. Owns `client`
    when `owns_client` (closed by close())."""

    name = "llm"

    def __init__(self, client: LlmClient, *, owns_client: bool = False):
        self.client = client
        self._owns = owns_client

    def close(self) -> None:
        if self._owns:
            self.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def translate(self, lines: Sequence[str], source: str, target: str) -> list[str]:
        from analysis.llm import LlmError

        lines = list(lines)
        if not lines:
            return []
        payload = {
            "source_language": f"{_name(source)} ({base_language(source)})",
            "target_language": f"{_name(target)} ({base_language(target)})",
            "lines": [{"id": k, "text": line} for k, line in enumerate(lines)],
            "answer_format": {"translations": [f"string, line {k} in {_name(target)}" for k in range(len(lines))]},
            "rules": f"Exactly {len(lines)} translations, in the order of the ids. Reply with the JSON object only.",
        }
        who = f"the LLM ({self.client.model})"
        try:
            answer = self.client.complete_json(TRANSLATE_SYSTEM, json.dumps(payload, ensure_ascii=False))
        except LlmError as exc:
            raise TranslationError(f"{who} could not translate to {_name(target)}: {exc}") from exc
        translations = answer.get("translations") if isinstance(answer, dict) else None
        return check_translation(lines, translations, source, target, who)


# ---------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------


def translator_from_settings(settings: Settings, *, llm: LlmClient | None = None) -> Translator | None:
    """The translator the settings configure, or None (module docstring). `llm`: an existing
    client to use for "llm" instead of making one from REELFARM_LLM_*."""
    choice = getattr(settings, "translator", "auto")
    url = (getattr(settings, "translate_url", None) or "").strip()
    has_llm = llm is not None or bool((settings.llm_base_url or "").strip())
    if choice == "none":
        return None
    if choice == "libretranslate" or (choice == "auto" and url):
        if not url:
            raise ValueError("REELFARM_TRANSLATOR=libretranslate needs REELFARM_TRANSLATE_URL")
        return LibreTranslateTranslator(url, getattr(settings, "translate_api_key", None),
                                        getattr(settings, "translate_timeout_seconds", 30.0))  # fmt: skip
    if choice == "llm" or (choice == "auto" and has_llm):
        if llm is not None:
            return LlmTranslator(llm)
        from analysis.llm import LlmClient, LlmConfig

        client = LlmClient.from_config(LlmConfig(base_url=settings.llm_base_url, api_key=settings.llm_api_key,
                                                 model=settings.llm_model, timeout_seconds=settings.llm_timeout_seconds))  # fmt: skip
        if client is None:
            raise ValueError("REELFARM_TRANSLATOR=llm needs REELFARM_LLM_BASE_URL")
        return LlmTranslator(client, owns_client=True)
    return None
