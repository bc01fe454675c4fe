"""The voice-over script of a campaign video: 30-45 s of speech about a captured web page.

`write_script(page, llm=..., target_seconds=(30, 45))` returns a `Script`: a title line, body
sentences and a call to action, in the page's language, with its estimated speaking time.

Extractive (the default, and the fallback):

- Title line: the page title without its site-name part ("Acme | Render 10x faster" ->
  "Render 10x faster"; the parts are split at | - – — · and those that are the domain's name,
  or start with it in at most three words, "Acme Render", are dropped; the longest part left
  is the title). A title that is only the brand becomes a hook ("Meet Acme."). No title:
  the first heading, else the domain.
- Body: every sentence of the main text, the headings and the paragraphs (that order; split
  by `split_sentences`) is a candidate when it has 4-32 words (ja/zh/ko: 8-80 characters),
  has no URL or e-mail address and is not boilerplate (cookies, sign-in, copyright...).
  Near-duplicates are dropped (the same letters and digits, one inside the other, or a word
  set - character bigrams for ja/zh/ko - overlapping >= 60%), also against the title and
  the call to action. Score = 2 per benefit word (at most 3: "save", "faster", "free",
  "automatically", "簡単", "無料"...) + 1.5 for addressing the viewer ("you", "Sie", "あなた"...)
  + 1 for a number + 1 more for a percentage or multiplier ("40%", "10x", "3倍") + 1 for an
  easy spoken length (8-22 words; 15-50 characters) + 0.5 for a heading. Sentences are taken
  best score first (earlier on the page on a tie) while the script stays under the upper
  bound, until it reaches the middle of the target (37.5 s for 30-45 s); they are spoken in
  page order.
- Call to action: the page's first call to action that is not navigation (sign in, pricing,
  docs...), preferring action words (start, try, get, sign up...), spoken with the domain
  ("Start your free trial at acme.com."); without one "Visit acme.com." (per language).
- The page's text, all of it, must be long enough for the lower bound; otherwise
  `ScriptError` says how many seconds it holds.

Speaking time (`estimate_seconds`): words per second for space-separated languages (en 3.4,
es 2.8, fr 3.0, pt 2.5, it 2.6, de 2.5, nl 2.4, others 2.4) and characters per second for
ja (6.5), zh (3.1) and ko (4.8), counting kana, kanji and hangul (a Latin word or number in
them counts as half its letters, at least 2 characters), plus 0.35 s between lines. These are
the rates the installed voices were measured to speak at (render_nodes/campaigns/voice.py:
Piper for English, Kokoro for Japanese, espeak-ng for the rest at 160 words a minute); the
real length is measured after the voiceover.

With an LLM (`analysis.llm.LlmClient`): one JSON-mode request with the page's text asks for
{title, sentences, call_to_action} in the page's language. The answer is used when its
sentences are 2-15 distinct lines of at most 40 words (100 characters), in the page's script,
lasting at least the lower bound (lines past the upper bound are dropped from the end);
an invalid title or call to action is replaced by the extractive one. Any other failure is
logged and the extractive script is returned (`Script.llm_error` says why).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from analysis.llm import LlmClient

log = logging.getLogger(__name__)

DEFAULT_TARGET_SECONDS = (30.0, 45.0)
PAUSE_SECONDS = 0.35  # between two spoken lines (render_nodes/campaigns/voice.py's pause)

WORDS_PER_SECOND = {"en": 3.4, "es": 2.8, "fr": 3.0, "pt": 2.5, "it": 2.6, "de": 2.5, "nl": 2.4}
DEFAULT_WORDS_PER_SECOND = 2.4
CHARS_PER_SECOND = {"ja": 6.5, "zh": 3.1, "ko": 4.8}
CHAR_LANGUAGES = frozenset(CHARS_PER_SECOND)

# Body sentence limits (words, or characters for ja/zh/ko)
MIN_WORDS, MAX_WORDS, IDEAL_WORDS = 4, 32, (8, 22)
MIN_CHARS, MAX_CHARS, IDEAL_CHARS = 8, 80, (15, 50)
TITLE_MAX_WORDS, TITLE_MAX_CHARS = 16, 40
CTA_MAX_WORDS, CTA_MAX_CHARS = 8, 20
# The LLM's lines
LLM_MIN_SENTENCES, LLM_MAX_SENTENCES = 2, 15
LLM_MAX_WORDS, LLM_MAX_CHARS = 40, 100
LLM_TITLE_MAX = 150
LLM_MAIN_TEXT_CHARS = 6000
LLM_ITEM_CHARS = 500
LLM_MAX_ITEMS = 40
DUPLICATE_OVERLAP = 0.6

LANGUAGE_NAMES = {
    "en": "English", "ja": "Japanese", "ko": "Korean", "zh": "Chinese (Simplified)", "es": "Spanish",
    "de": "German", "fr": "French", "pt": "Portuguese", "it": "Italian", "nl": "Dutch",
}  # fmt: skip


class ScriptError(Exception):
    """No script can be written for this page (the message says why, for the campaign's status)."""


@dataclass(frozen=True)
class PageText:
    """The text of a captured page, as the script needs it."""

    title: str = ""
    language: str = ""  # BCP 47 ("en", "ja-JP"); empty: guessed from the text
    headings: Sequence[str] = ()
    paragraphs: Sequence[str] = ()
    calls_to_action: Sequence[str] = ()  # button/link texts, in page order
    main_text: str = ""  # the article text (trafilatura), paragraphs on their own lines
    domain: str = ""  # "acme.com"


@dataclass(frozen=True)
class Script:
    language: str  # primary subtag: "en", "ja"
    title: str  # the first line spoken (title or hook)
    sentences: list[str]
    call_to_action: str  # the last line spoken
    estimated_seconds: float
    source: str = "extractive"  # "extractive" | "llm"; "+<translator>" once translated
    llm_error: str | None = None  # why the LLM's script was not used
    translated_from: str | None = None  # the language this script was translated from

    @property
    def lines(self) -> list[str]:
        """Everything spoken, in order: title, sentences, call to action."""
        return [self.title, *self.sentences, self.call_to_action]

    @property
    def text(self) -> str:
        return ("" if self.language in CHAR_LANGUAGES else " ").join(self.lines)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Script:
        return cls(**{**data, "sentences": list(data["sentences"])})


# ---------------------------------------------------------------------------------------
# Languages, scripts and speaking time
# ---------------------------------------------------------------------------------------

_KANA = "\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f"
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HANGUL = "\uac00-\ud7af\u1100-\u11ff\u3130-\u318f"
_CJK_CHAR = re.compile(f"[{_KANA}{_HAN}{_HANGUL}]")
_LATIN_RUN = re.compile(r"[0-9A-Za-z\u00c0-\u024f]+")
_WORD = re.compile(r"[^\W_]+(?:['’\-.][^\W_]+)*")


def base_language(tag: str | None) -> str:
    """The primary language subtag: "ja-JP" -> "ja", "zh_Hans" -> "zh", "" -> ""."""
    return re.split(r"[-_]", (tag or "").strip().lower(), maxsplit=1)[0]


def guess_language(text: str) -> str:
    """The page's language from its script alone: kana -> ja, hangul -> ko, han -> zh, else en."""
    counts = {
        "ja": len(re.findall(f"[{_KANA}]", text)),
        "ko": len(re.findall(f"[{_HANGUL}]", text)),
        "zh": len(re.findall(f"[{_HAN}]", text)),
    }
    letters = sum(1 for ch in text if ch.isalpha()) or 1
    if counts["ja"] and counts["ja"] + counts["zh"] >= 0.3 * letters:
        return "ja"
    if counts["ko"] >= 0.3 * letters:
        return "ko"
    if counts["zh"] >= 0.3 * letters:
        return "zh"
    return "en"


def is_char_language(language: str) -> bool:
    return base_language(language) in CHAR_LANGUAGES


def speech_units(text: str, language: str) -> float:
    """Words (space-separated languages) or characters (ja/zh/ko) that `text` takes to say."""
    if is_char_language(language):
        latin = sum(max(2, math.ceil(len(run) / 2)) for run in _LATIN_RUN.findall(text))
        return len(_CJK_CHAR.findall(text)) + latin
    return len(_WORD.findall(text))


def speaking_rate(language: str) -> float:
    """Units per second of narration: characters for ja/zh/ko, words otherwise."""
    lang = base_language(language)
    return CHARS_PER_SECOND.get(lang) or WORDS_PER_SECOND.get(lang, DEFAULT_WORDS_PER_SECOND)


def estimate_seconds(lines: Sequence[str], language: str) -> float:
    """Estimated speaking time of `lines` said one after the other (PAUSE_SECONDS between)."""
    lines = [line for line in lines if line.strip()]
    if not lines:
        return 0.0
    rate = speaking_rate(language)
    return round(sum(speech_units(line, language) for line in lines) / rate + PAUSE_SECONDS * (len(lines) - 1), 2)


def script_share(text: str, language: str) -> float:
    """The share of `text`'s letters written in `language`'s script (CJK for ja/zh/ko, else
    anything but CJK)."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return 0.0
    cjk = sum(1 for ch in letters if _CJK_CHAR.match(ch))
    share = cjk / len(letters)
    return share if is_char_language(language) else 1.0 - share


# ---------------------------------------------------------------------------------------
# Sentences
# ---------------------------------------------------------------------------------------

_CJK_TERMINALS = "。！？｡"
_TERMINALS = ".!?…"
_CLOSERS = "\"'”’」』）)]】〉》"
_ABBREVIATIONS = frozenset((
    "e.g", "i.e", "etc", "vs", "mr", "mrs", "ms", "dr", "prof", "inc", "ltd", "co", "corp", "jr", "sr", "st", "no",
    "approx", "dept", "est", "fig", "misc", "z.b", "bzw", "usw", "ca", "nr", "sra", "av", "p.ex", "env", "mme",
))  # fmt: skip
_BULLET = re.compile(r"^[\s\-–—•·*►▶✓✔→>#]+")


def _clean(text: str) -> str:
    text = _BULLET.sub("", text.replace("\u00a0", " "))
    return " ".join(text.split()).strip()


def split_sentences(text: str) -> list[str]:
    """Sentences of `text`, for English-like and CJK text alike.

    A line break always ends a sentence. 。！？ (and ｡) end one wherever they are; . ! ? …
    end one when followed by a space or the end, except a "." after a known abbreviation
    ("e.g.", "Dr.") or a single letter ("J. Smith") or before a lowercase word. Closing
    quotes and brackets stay with their sentence; list bullets are removed.
    """
    out: list[str] = []
    for line in (text or "").splitlines():
        start, i, n = 0, 0, len(line)
        while i < n:
            ch = line[i]
            end = None
            if ch in _CJK_TERMINALS:
                j = i + 1
                while j < n and (line[j] in _CJK_TERMINALS or line[j] in _TERMINALS or line[j] in _CLOSERS):
                    j += 1
                end = j
            elif ch in _TERMINALS:
                j = i + 1
                while j < n and (line[j] in _TERMINALS or line[j] in _CLOSERS):
                    j += 1
                if j >= n or line[j].isspace():
                    if ch == "." and j == i + 1 and not _sentence_end_at_dot(line, i, j):
                        end = None
                    else:
                        end = j
            if end is not None:
                piece = _clean(line[start:end])
                if piece:
                    out.append(piece)
                start = i = end
                continue
            i += 1
        piece = _clean(line[start:])
        if piece:
            out.append(piece)
    return [s for s in out if any(ch.isalnum() for ch in s)]


def _sentence_end_at_dot(line: str, dot: int, after: int) -> bool:
    word = re.search(r"(\S+)$", line[:dot])
    token = word.group(1).lower().lstrip("(\"'“‘") if word else ""
    if token in _ABBREVIATIONS or (len(token) == 1 and token.isalpha()):
        return False
    rest = line[after:].lstrip()
    return not (rest and rest[0].islower())


def _terminate(line: str, language: str) -> str:
    line = line.strip().rstrip(",;:、，").strip()
    if not line or line[-1] in _TERMINALS + _CJK_TERMINALS or line[-1] in _CLOSERS:
        return line
    return line + ("。" if base_language(language) in ("ja", "zh") else ".")


# ---------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------

_BENEFIT_WORDS = {
    "en": "save saves saving faster fast quick quickly easy easily effortless effortlessly simple simply free "
          "instant instantly automatic automatically automate automates boost boosts grow grows improve improves "
          "better best reduce reduces cut cuts secure safe reliable unlimited powerful without seconds minutes "
          "hours anywhere ready more less help helps lets",
    "es": "ahorra ahorrar ahorre rápido rápida rápidamente fácil fácilmente gratis gratuito gratuita automático "
          "automática automáticamente mejor mejora mejorar seguro segura sin minutos segundos ilimitado potente",
    "de": "sparen spart schnell schneller einfach einfacher kostenlos gratis automatisch besser sicher ohne "
          "minuten sekunden unbegrenzt mühelos leistungsstark",
    "fr": "économisez économiser gagnez rapide rapidement facile facilement gratuit gratuitement automatique "
          "automatiquement meilleur meilleure sécurisé sans minutes secondes illimité puissant",
    "pt": "economize economizar rápido rápida facilmente fácil grátis gratuito automático automaticamente "
          "melhor seguro sem minutos segundos ilimitado poderoso",
    "it": "risparmia veloce velocemente facile facilmente gratis gratuito automatico automaticamente migliore "
          "sicuro senza minuti secondi illimitato",
    "ja": "簡単 かんたん 無料 自動 すぐ 手軽 便利 節約 効率 向上 削減 短縮 安心 安全 高速 速く 最大 だけで いつでも どこでも "
          "できます 倍 秒 分で",
    "ko": "쉽게 간편 무료 자동 빠르게 빠른 절약 효율 향상 절감 안전 최대 언제든지 어디서나 할 수 있습니다 배",
    "zh": "简单 轻松 免费 自动 快速 更快 节省 效率 提升 降低 安全 最多 随时 随地 一键 倍 秒",
}  # fmt: skip
_SECOND_PERSON = {
    "en": "you your you're yours you'll yourself",
    "es": "tú tu tus usted ustedes te",
    "de": "Sie Ihr Ihre Ihren Ihrem Ihrer du dein deine dich dir",
    "fr": "vous votre vos tu ton ta tes",
    "pt": "você vocês seu sua seus suas",
    "it": "tu tuo tua tuoi voi vostro",
    "ja": "あなた 皆様 皆さま みなさま お客様",
    "ko": "당신 여러분 고객",
    "zh": "您 你",
}
_BOILERPLATE = re.compile(
    r"cookie|privacy policy|terms of (service|use)|all rights reserved|©|copyright|sign in|log in|login|"
    r"newsletter|javascript|your browser|クッキー|プライバシー|利用規約|ログイン|無断転載|著作権|쿠키|로그인|"
    r"隐私|登录|版权所有|datenschutz|política de privacidad|mentions légales",
    re.IGNORECASE,
)
_LINK = re.compile(r"https?://|www\.|\S+@\S+\.\w+")
_NUMBER = re.compile(r"\d")
_MULTIPLIER = re.compile(r"\d\s*(%|％|x\b|×|倍|percent|prozent|por ciento|pour cent)", re.IGNORECASE)


def _has_word(text: str, words: str, *, case_sensitive: bool, char_language: bool) -> int:
    hits = 0
    for w in words.split():
        if char_language:
            hits += w in text
        else:
            flags = 0 if case_sensitive else re.IGNORECASE
            hits += bool(re.search(rf"(?<![^\W_]){re.escape(w)}(?![^\W_])", text, flags))
    return hits


def score_sentence(sentence: str, language: str, *, heading: bool = False) -> float:
    """How strongly `sentence` sells (the rule in the module docstring)."""
    lang = base_language(language)
    char_lang = lang in CHAR_LANGUAGES
    benefit = _has_word(sentence, _BENEFIT_WORDS.get(lang, _BENEFIT_WORDS["en"]), case_sensitive=False,
                        char_language=char_lang)  # fmt: skip
    you = _has_word(sentence, _SECOND_PERSON.get(lang, _SECOND_PERSON["en"]), case_sensitive=lang == "de",
                    char_language=char_lang)  # fmt: skip
    units = speech_units(sentence, lang)
    low, high = IDEAL_CHARS if char_lang else IDEAL_WORDS
    score = 2.0 * min(benefit, 3) + (1.5 if you else 0.0)
    score += 1.0 if _NUMBER.search(sentence) else 0.0
    score += 1.0 if _MULTIPLIER.search(sentence) else 0.0
    score += 1.0 if low <= units <= high else 0.0
    score += 0.5 if heading else 0.0
    return score


def usable_sentence(sentence: str, language: str) -> bool:
    """A body candidate: within the length limits, no link, not boilerplate."""
    units = speech_units(sentence, language)
    low, high = (MIN_CHARS, MAX_CHARS) if is_char_language(language) else (MIN_WORDS, MAX_WORDS)
    return low <= units <= high and not _LINK.search(sentence) and not _BOILERPLATE.search(sentence)


def fit_to(script: Script, max_seconds: float) -> Script:
    """`script` with body sentences dropped from its end until its estimate is at most
    `max_seconds` (a translation can run longer than its original); the title and the call to
    action stay. The script itself when it fits."""
    sentences = list(script.sentences)
    while sentences and estimate_seconds([script.title, *sentences, script.call_to_action],
                                         script.language) > max_seconds:  # fmt: skip
        sentences.pop()
    if len(sentences) == len(script.sentences):
        return script
    return replace(script, sentences=sentences,
                   estimated_seconds=estimate_seconds([script.title, *sentences, script.call_to_action],
                                                      script.language))  # fmt: skip


def _key(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def _tokens(text: str, language: str) -> set[str]:
    if is_char_language(language):
        chars = _key(text)
        return {chars[i : i + 2] for i in range(len(chars) - 1)} or {chars}
    return {w.casefold() for w in _WORD.findall(text)}


def near_duplicate(a: str, b: str, language: str) -> bool:
    ka, kb = _key(a), _key(b)
    if not ka or not kb:
        return False
    if ka == kb or (min(len(ka), len(kb)) >= 12 and (ka in kb or kb in ka)):
        return True
    ta, tb = _tokens(a, language), _tokens(b, language)
    return len(ta & tb) / max(1, min(len(ta), len(tb))) >= DUPLICATE_OVERLAP if ta and tb else False


# ---------------------------------------------------------------------------------------
# Title and call to action
# ---------------------------------------------------------------------------------------

_HOOK = {
    "en": "Meet {x}.", "ja": "{x}をご紹介します。", "ko": "{x}을 소개합니다.", "zh": "为您介绍{x}。",
    "es": "Descubre {x}.", "de": "Entdecken Sie {x}.", "fr": "Découvrez {x}.", "pt": "Conheça {x}.",
    "it": "Scopri {x}.", "nl": "Maak kennis met {x}.",
}  # fmt: skip
_VISIT = {
    "en": "Visit {d}.", "ja": "詳しくは{d}へ。", "ko": "{d}에서 확인하세요.", "zh": "详情请访问{d}。",
    "es": "Visita {d}.", "de": "Besuchen Sie {d}.", "fr": "Rendez-vous sur {d}.", "pt": "Visite {d}.",
    "it": "Visita {d}.", "nl": "Bezoek {d}.",
}  # fmt: skip
_CTA_WITH_DOMAIN = {"en": "{cta} at {d}.", "ja": "{cta}：{d}。", "zh": "{cta}：{d}。"}
_NAVIGATION = re.compile(
    r"^(home|menu|sign ?in|log ?in|login|pricing|prices|docs|documentation|blog|about( us)?|contact( us)?|faq|"
    r"careers|jobs|features|product|products|support|help|terms|privacy|cookies?|accept( all)?|close|"
    r"english|日本語|한국어|中文|ログイン|料金|お問い合わせ|로그인|登录|anmelden|iniciar sesión|connexion)$",
    re.IGNORECASE,
)
_ACTION = re.compile(
    r"\b(start|try|get|sign ?up|join|download|book|buy|order|create|request|claim|install|subscribe|begin|"
    r"build|launch|register|shop)\b|始め|試|無料|申し込|登録|ダウンロード|시작|무료|가입|开始|免费|注册|试用|"
    r"empieza|prueba|comienza|starten|testen|kostenlos|commencez|essayez|gratuit|comece|experimente",
    re.IGNORECASE,
)
_TITLE_SEPARATORS = re.compile(r"\s+[|\-–—·:]\s+|\s*[|｜·]\s*|\s*::\s*")


def _domain_name(domain: str) -> str:
    host = (domain or "").strip().lower().removeprefix("www.")
    return host.split(".")[0] if host else ""


def clean_domain(domain: str) -> str:
    host = re.sub(r"^[a-z][a-z0-9+.-]*://", "", (domain or "").strip().lower())
    return host.split("/")[0].split(":")[0].removeprefix("www.")


def _site_name(part: str, brand: str, domain: str) -> bool:
    """Whether `part` of a title names the site: "Acme", "acme.com" or "Acme Render" (the brand and
    at most two more words) for acme.com."""
    key = _key(part)
    if not key or key in (_key(brand), _key(domain)):
        return True
    return bool(brand) and key.startswith(_key(brand)) and len(part.split()) <= 3


def title_line(page: PageText, language: str) -> str:
    """The first line spoken (rule in the module docstring)."""
    lang = base_language(language)
    domain = clean_domain(page.domain)
    brand = _domain_name(domain)
    raw = _clean(page.title)
    parts = [p.strip() for p in _TITLE_SEPARATORS.split(raw) if p and p.strip()] if raw else []
    content = [p for p in parts if not _site_name(p, brand, domain)]
    multiword = [p for p in content if speech_units(p, lang) >= (4 if lang in CHAR_LANGUAGES else 2)]
    title = max(multiword or content or [""], key=lambda p: speech_units(p, lang))
    if not title:
        heads = [_clean(h) for h in page.headings if _clean(h)]
        if heads and not parts:
            title = heads[0]
        else:  # only the brand (or nothing): a hook
            name = parts[0] if parts else (brand.capitalize() if brand else "")
            if not name:
                raise ScriptError("the page has no title, heading or domain to open the video with")
            return _HOOK.get(lang, _HOOK["en"]).format(x=name)
    limit = TITLE_MAX_CHARS if lang in CHAR_LANGUAGES else TITLE_MAX_WORDS
    if speech_units(title, lang) > limit:
        title = split_sentences(title)[0]
        if speech_units(title, lang) > limit:
            title = title[:limit] if lang in CHAR_LANGUAGES else " ".join(title.split()[:limit])
    return _terminate(title, lang)


def call_to_action_line(page: PageText, language: str) -> str:
    """The last line spoken: the page's call to action with the domain, else "Visit <domain>."."""
    lang = base_language(language)
    domain = clean_domain(page.domain)
    limit = CTA_MAX_CHARS if lang in CHAR_LANGUAGES else CTA_MAX_WORDS
    ctas = []
    for k, raw in enumerate(page.calls_to_action):
        text = _clean(raw).rstrip(" →>»›.!。！")
        if not text or _NAVIGATION.match(text) or _LINK.search(text) or speech_units(text, lang) > limit:
            continue
        ctas.append((0 if _ACTION.search(text) else 1, k, text))
    if ctas:
        cta = min(ctas)[2]
        if not domain:
            return _terminate(cta, lang)
        return _CTA_WITH_DOMAIN.get(lang, "{cta}: {d}.").format(cta=cta, d=domain)
    if not domain:
        raise ScriptError("the page has no call to action and no domain to end the video with")
    return _VISIT.get(lang, _VISIT["en"]).format(d=domain)


# ---------------------------------------------------------------------------------------
# The script
# ---------------------------------------------------------------------------------------


@dataclass
class _Candidate:
    text: str
    position: int
    score: float
    units: float = field(default=0.0)


def candidates(page: PageText, language: str) -> list[_Candidate]:
    """Usable, de-duplicated body sentences in page order (main text, headings, paragraphs)."""
    sources: list[tuple[str, bool]] = []
    for block in (page.main_text or "").splitlines():
        sources.extend((s, False) for s in split_sentences(block))
    heads = {_key(h) for h in page.headings}
    for heading in page.headings:
        sources.extend((s, True) for s in split_sentences(heading))
    for paragraph in page.paragraphs:
        sources.extend((s, False) for s in split_sentences(paragraph))
    out: list[_Candidate] = []
    for position, (sentence, heading) in enumerate(sources):
        if not usable_sentence(sentence, language):
            continue
        if any(near_duplicate(sentence, c.text, language) for c in out):
            continue
        heading = heading or _key(sentence) in heads
        out.append(_Candidate(_terminate(sentence, language), position,
                              score_sentence(sentence, language, heading=heading),
                              speech_units(sentence, language)))  # fmt: skip
    return out


def _check_target(target_seconds: tuple[float, float]) -> tuple[float, float]:
    low, high = (float(v) for v in target_seconds)
    if not 0 < low <= high:
        raise ValueError(f"target_seconds must be (low, high) with 0 < low <= high, not {target_seconds!r}")
    return low, high


def page_language(page: PageText) -> str:
    lang = base_language(page.language)
    if lang:
        return lang
    return guess_language(" ".join([page.title, *page.headings, *page.paragraphs, page.main_text]))


def write_script(page: PageText, *, llm: LlmClient | None = None,
                 target_seconds: tuple[float, float] = DEFAULT_TARGET_SECONDS) -> Script:  # fmt: skip
    """The page's script in its own language (module docstring); ScriptError when the page
    has too little text for `target_seconds`."""
    low, high = _check_target(target_seconds)
    lang = page_language(page)
    title = title_line(page, lang)
    cta = call_to_action_line(page, lang)
    pool = [c for c in candidates(page, lang)
            if not near_duplicate(c.text, title, lang) and not near_duplicate(c.text, cta, lang)]  # fmt: skip
    everything = estimate_seconds([title, *(c.text for c in pool), cta], lang)
    if everything < low:
        raise ScriptError(
            f"the page has too little text for a {low:g}-{high:g} s video: its usable sentences, title and "
            f"call to action make about {everything:.0f} s of speech ({len(pool)} sentence(s))"
        )
    extractive = _extractive(title, cta, pool, lang, low, high)
    if llm is None:
        return extractive
    try:
        return _llm_script(llm, page, lang, low, high, extractive)
    except Exception as exc:  # noqa: BLE001 - the LLM never fails a campaign
        reason = str(exc) or type(exc).__name__
        log.warning("LLM script failed, using the extractive script: %s", reason)
        return Script(**{**extractive.to_dict(), "llm_error": reason})


def _extractive(title: str, cta: str, pool: list[_Candidate], lang: str, low: float, high: float) -> Script:
    aim = (low + high) / 2
    chosen: list[_Candidate] = []

    def total(items: list[_Candidate]) -> float:
        return estimate_seconds([title, *(c.text for c in sorted(items, key=lambda c: c.position)), cta], lang)

    for cand in sorted(pool, key=lambda c: (-c.score, c.position)):
        if total(chosen) >= aim:
            break
        if total([*chosen, cand]) <= high:
            chosen.append(cand)
    chosen.sort(key=lambda c: c.position)
    seconds = total(chosen)
    if seconds < low:
        raise ScriptError(
            f"the page's sentences do not fit a {low:g}-{high:g} s video: the best fit is about {seconds:.0f} s"
        )
    if seconds > high:  # title and call to action alone
        raise ScriptError(f"the title and call to action alone take {seconds:.0f} s, over {high:g} s")
    return Script(lang, title, [c.text for c in chosen], cta, seconds)


# ---------------------------------------------------------------------------------------
# The LLM's script
# ---------------------------------------------------------------------------------------

SCRIPT_SYSTEM = (
    "You write the voice-over of a short vertical demo video about a web page, spoken by a "
    "text-to-speech voice. Use only facts stated on the page; no invented claims, prices or numbers. "
    "Write natural spoken sentences in the language you are asked for, without emoji, hashtags, URLs "
    "other than the domain, or stage directions. Answer with one JSON object only."
)


def _llm_request(page: PageText, lang: str, low: float, high: float) -> str:
    rate = speaking_rate(lang)
    unit = "characters" if lang in CHAR_LANGUAGES else "words"
    items = lambda xs: [_clean(x)[:LLM_ITEM_CHARS] for x in xs if _clean(x)][:LLM_MAX_ITEMS]
    payload = {
        "task": f"Write a {low:g}-{high:g} second voice-over script in {LANGUAGE_NAMES.get(lang, lang)} ({lang}) "
                "that makes viewers want to try what the page offers: a title line or hook, the strongest "
                "benefits as short sentences, and a call to action naming the domain.",
        "page": {
            "domain": clean_domain(page.domain),
            "title": _clean(page.title),
            "headings": items(page.headings),
            "paragraphs": items(page.paragraphs),
            "calls_to_action": items(page.calls_to_action),
            "main_text": (page.main_text or "")[:LLM_MAIN_TEXT_CHARS],
        },
        "length": f"{round(low * rate)}-{round(high * rate)} {unit} in all (spoken at about {rate:g} {unit} "
                  f"per second), in {LLM_MIN_SENTENCES + 1}-{LLM_MAX_SENTENCES} sentences",
        "answer_format": {
            "title": "string, the first line spoken",
            "sentences": "array of strings, one spoken sentence each, at most "
                         + (f"{LLM_MAX_CHARS} characters" if lang in CHAR_LANGUAGES else f"{LLM_MAX_WORDS} words"),
            "call_to_action": "string, the last line spoken, naming the domain",
        },
        "rules": f"Everything in {LANGUAGE_NAMES.get(lang, lang)}. Reply with the JSON object only.",
    }  # fmt: skip
    return json.dumps(payload, ensure_ascii=False)


def _llm_line(value, lang: str, max_chars: int) -> str | None:
    if not isinstance(value, str):
        return None
    text = " ".join(value.split()).strip().strip('"').strip()
    if not text or len(text) > max_chars or script_share(text, lang) < 0.5:
        return None
    return _terminate(text, lang)


def validate_llm_script(answer: dict, lang: str, low: float, high: float, extractive: Script) -> Script:
    """The model's script, or LlmError saying what is wrong with it (module docstring)."""
    from analysis.llm import LlmError

    if not isinstance(answer, dict):
        raise LlmError("the answer is not an object")
    raw = answer.get("sentences")
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        raise LlmError("the answer has no list of sentences")
    sentences = [" ".join(s.split()) for s in raw if s.strip()]
    if not LLM_MIN_SENTENCES <= len(sentences) <= LLM_MAX_SENTENCES:
        raise LlmError(f"{len(sentences)} sentences, expected {LLM_MIN_SENTENCES}-{LLM_MAX_SENTENCES}")
    limit = LLM_MAX_CHARS if lang in CHAR_LANGUAGES else LLM_MAX_WORDS
    for s in sentences:
        if speech_units(s, lang) > limit:
            raise LlmError(f"a sentence is longer than {limit} {'characters' if lang in CHAR_LANGUAGES else 'words'}")
    for k, s in enumerate(sentences):
        if any(near_duplicate(s, other, lang) for other in sentences[:k]):
            raise LlmError(f"sentence {k + 1} repeats an earlier one")
    share = script_share(" ".join(sentences), lang)
    if share < 0.5:
        raise LlmError(f"the sentences are not written in {LANGUAGE_NAMES.get(lang, lang)}")
    sentences = [_terminate(s, lang) for s in sentences]
    title = _llm_line(answer.get("title"), lang, LLM_TITLE_MAX) or extractive.title
    cta = _llm_line(answer.get("call_to_action"), lang, LLM_TITLE_MAX) or extractive.call_to_action
    seconds = estimate_seconds([title, *sentences, cta], lang)
    while seconds > high and len(sentences) > LLM_MIN_SENTENCES:
        sentences.pop()
        seconds = estimate_seconds([title, *sentences, cta], lang)
    if not low <= seconds <= high:
        raise LlmError(f"the script takes about {seconds:.0f} s, outside {low:g}-{high:g} s")
    return Script(lang, title, sentences, cta, seconds, source="llm")


def _llm_script(llm: LlmClient, page: PageText, lang: str, low: float, high: float, extractive: Script) -> Script:
    answer = llm.complete_json(SCRIPT_SYSTEM, _llm_request(page, lang, low, high))
    return validate_llm_script(answer, lang, low, high, extractive)
