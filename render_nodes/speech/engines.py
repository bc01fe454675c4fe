"""A node's speech engines: which load here, which one a transcribe task gets, and a pool.

At start the node checks what it has (render_nodes/speech/whisper_models.py): the English
Whisper model, the multilingual one, an operator's model directory, and PocketSphinx,
which always loads. What is missing or corrupted is logged with the reason and left out;
the node reports the rest as capabilities. For a task:

- "auto" (default): faster-whisper where a Whisper model loaded, else PocketSphinx.
- The language: the job's, or the one Whisper's multilingual model detects in the part's
  speech. Every language goes to the multilingual model (base), English included: on
  bench/transcribe.py's espeak-ng paragraphs it reads English at WER 0.148 against
  tiny.en's 0.176, at ~10x realtime on 2 cores against ~17x. `english_model="tiny.en"`
  (REELFARM_WHISPER_ENGLISH_MODEL) trades that for speed. A language no engine here
  serves is a TaskFailure that says so, never garbage captions.

Whisper runs on CUDA in float16 where the node's capabilities list a GPU that CTranslate2
sees, otherwise on the CPU in int8; a model that fails to load on CUDA is tried on the CPU.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from reelfarm.options import WHISPER_LANGUAGES
from render_nodes.speech import whisper_models
from render_nodes.speech.transcribe import (
    FASTER_WHISPER,
    POCKETSPHINX,
    FasterWhisperTranscriber,
    PocketSphinxTranscriber,
    TranscriberUnavailable,
    faster_whisper_installed,
    whisper_device,
)
from render_nodes.speech.whisper_models import ModelUnavailable, WhisperModelFiles

log = logging.getLogger(__name__)


class EngineRefused(RuntimeError):
    """No engine here can transcribe what was asked (message says why); not worth a retry."""


@dataclass(frozen=True)
class Choice:
    engine: str  # FASTER_WHISPER | POCKETSPHINX
    model: str | None  # the Whisper model's name
    language: str  # ISO 639-1


class SpeechEngines:
    def __init__(self, *, preference: str = "auto", model_dir: Path | None = None, model_sha256: str | None = None,
                 english_model: str = whisper_models.MULTILINGUAL, gpus: list | None = None,
                 cpu_threads: int = 0) -> None:  # fmt: skip
        self.preference = preference
        self.english_model = english_model
        self.device, self.compute_type = whisper_device(gpus or [])
        self.cpu_threads = cpu_threads
        # By role: "en" (English) and "all" (multilingual).
        self.models: dict[str, WhisperModelFiles] = {}
        self.unavailable: dict[str, str] = {}
        self._idle: dict[tuple[str, str | None], list] = {}
        self._lock = threading.Lock()
        self._find_models(model_dir, model_sha256)

    def _find_models(self, model_dir: Path | None, model_sha256: str | None) -> None:
        if self.preference == POCKETSPHINX:
            return
        if not faster_whisper_installed():
            self._refuse(FASTER_WHISPER, "the faster-whisper package is not installed")
            return
        if model_dir is not None:  # an operator's model takes the place of the shipped one
            try:
                files = whisper_models.configured(model_dir, model_sha256)
                self.models["all" if files.multilingual else "en"] = files
            except ModelUnavailable as exc:
                self._refuse(f"{FASTER_WHISPER} ({model_dir})", str(exc))
        for role, name in (("en", whisper_models.ENGLISH), ("all", whisper_models.MULTILINGUAL)):
            if role in self.models:
                continue
            try:
                self.models[role] = whisper_models.packaged(name)
            except ModelUnavailable as exc:
                self._refuse(f"{FASTER_WHISPER} {name}", str(exc))

    def _refuse(self, what: str, reason: str) -> None:
        self.unavailable[what] = reason
        log.warning("speech engine %s is not available here: %s", what, reason)

    # ------------------------------------------------------------ what the node reports

    def available(self) -> list[str]:
        """The engines that load here, preferred first (NodeCapabilities.transcribers)."""
        return ([FASTER_WHISPER] if self.models else []) + [POCKETSPHINX]

    def whisper_models(self) -> list[str]:
        return sorted({files.name for files in self.models.values()})

    def languages(self) -> list[str]:
        return list(WHISPER_LANGUAGES) if "all" in self.models else ["en"]

    def capabilities(self) -> dict:
        return {"transcribers": self.available(), "whisper_models": self.whisper_models(),
                "transcription_languages": self.languages()}  # fmt: skip

    # ------------------------------------------------------------ choosing for a task

    def engine_for(self, requested: str) -> str:
        """The engine a task asking for `requested` ("", "auto" or a name) runs on."""
        if requested in ("", "auto"):
            return FASTER_WHISPER if self.models else POCKETSPHINX
        if requested not in self.available():
            reasons = "; ".join(f"{k}: {v}" for k, v in self.unavailable.items()) or "not installed"
            raise TranscriberUnavailable(f"transcriber {requested} is not available on this node ({reasons})")
        return requested

    def choose(self, engine: str, language: str) -> Choice:
        """The model for speech in `language` (already known or detected)."""
        if engine == POCKETSPHINX:
            if language != "en":
                raise EngineRefused(f"speech in '{language}' cannot be transcribed here: PocketSphinx reads English "
                                    "only and no multilingual Whisper model is installed")  # fmt: skip
            return Choice(POCKETSPHINX, None, "en")
        if language == "en":
            # The preferred English model where it loaded, else whichever reads English.
            preferred = [f for f in self.models.values() if f.name == self.english_model]
            files = (preferred or [self.models[r] for r in ("all", "en") if r in self.models])[0]
            return Choice(FASTER_WHISPER, files.name, "en")
        if "all" in self.models:
            return Choice(FASTER_WHISPER, self.models["all"].name, language)
        raise EngineRefused(f"speech in '{language}' cannot be transcribed here: only English models are installed "
                            "(see the README's languages)")  # fmt: skip

    def detector(self):
        """A transcriber that can detect the language (the multilingual one), or None."""
        return self.acquire(FASTER_WHISPER, self.models["all"].name) if "all" in self.models else None

    # ------------------------------------------------------------ the pool

    def acquire(self, engine: str, model: str | None):
        """A transcriber of its own for the caller (decoders are not shared between threads)."""
        with self._lock:
            idle = self._idle.setdefault((engine, model), [])
            if idle:
                return idle.pop()
        if engine == POCKETSPHINX:
            return PocketSphinxTranscriber()
        files = next(f for f in self.models.values() if f.name == model)
        try:
            return FasterWhisperTranscriber(files, device=self.device, compute_type=self.compute_type,
                                            cpu_threads=self.cpu_threads)  # fmt: skip
        except TranscriberUnavailable as exc:
            if self.device == "cpu":
                raise
            log.warning("%s; using the CPU", exc)
            self.device, self.compute_type = "cpu", "int8"
            return FasterWhisperTranscriber(files, device="cpu", compute_type="int8", cpu_threads=self.cpu_threads)

    def release(self, engine: str, model: str | None, transcriber) -> None:
        with self._lock:
            self._idle.setdefault((engine, model), []).append(transcriber)
