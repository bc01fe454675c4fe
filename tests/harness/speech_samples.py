"""Speech test material made with espeak-ng (apt espeak-ng): known words, known timing."""

from __future__ import annotations

import re
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000

PARAGRAPH = (
    "Good morning and welcome back to the show. Today we are talking about how small teams can build "
    "software that people actually want to use. The first thing to remember is that you should talk to "
    "your customers every single week. Write down what they say, and look for the problems that come up "
    "again and again. Then pick one problem and solve it well before you move on to the next one."
)

# Two clearly different voices: a low male one and a high female one.
VOICE_A = ("en-us+m3", 30)
VOICE_B = ("en-us+f4", 75)

DIALOGUE = [
    "Thanks for joining us today. Can you tell our listeners what your company does?",
    "Of course. We build tools that help small farms track their water use through the season.",
    "That sounds useful. How did you get started with that idea?",
    "My parents grew apples for thirty years, and every summer the wells ran lower than before.",
    "And what would you tell somebody who wants to start a business like yours?",
    "Start small, listen to your customers, and never stop measuring the results.",
]


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None and shutil.which("ffmpeg") is not None


def normalise_text(text: str) -> str:
    """Lower case words only, as a recogniser writes them."""
    return " ".join(re.sub(r"[^a-z' ]+", " ", text.lower()).split())


def speak(text: str, voice: str = "en-us+f3", *, pitch: int | None = None, speed: int = 160,
          trim: bool = True) -> bytes:
    """PCM16 mono at 16 kHz of espeak-ng saying ``text``; leading/trailing silence trimmed."""
    cmd = ["espeak-ng", "-v", voice, "-s", str(speed), "--stdout"]
    if pitch is not None:
        cmd += ["-p", str(pitch)]
    wav = subprocess.run([*cmd, text], capture_output=True, check=True).stdout
    pcm = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-i", "pipe:0",
                          "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "s16le", "pipe:1"],
                         input=wav, capture_output=True, check=True).stdout
    return trim_silence(pcm) if trim else pcm


def trim_silence(pcm: bytes, threshold: int = 300) -> bytes:
    x = np.frombuffer(pcm, dtype="<i2")
    loud = np.flatnonzero(np.abs(x.astype(np.int32)) > threshold)
    if loud.size == 0:
        return b""
    return x[loud[0] : loud[-1] + 1].tobytes()


def silence(seconds: float) -> bytes:
    return bytes(2 * round(seconds * SAMPLE_RATE))


def seconds(pcm: bytes) -> float:
    return len(pcm) / 2 / SAMPLE_RATE


@dataclass(frozen=True)
class Spoken:
    """A piece of synthetic speech and where each part is in it (seconds)."""

    pcm: bytes
    parts: list[tuple[float, float, int]]  # (start, end, speaker) of each spoken part

    @property
    def duration(self) -> float:
        return seconds(self.pcm)


def concatenate(pieces: list[tuple[bytes, int]], pause: float, lead: float = 0.5) -> Spoken:
    """Join (pcm, speaker) pieces with ``pause`` seconds of silence between them."""
    out = [silence(lead)]
    parts: list[tuple[float, float, int]] = []
    t = lead
    for i, (pcm, speaker) in enumerate(pieces):
        if i:
            out.append(silence(pause))
            t += pause
        parts.append((t, t + seconds(pcm), speaker))
        out.append(pcm)
        t += seconds(pcm)
    out.append(silence(lead))
    return Spoken(b"".join(out), parts)


def dialogue(pause: float = 0.8) -> Spoken:
    """The DIALOGUE turns, alternating VOICE_A (speaker 0) and VOICE_B (speaker 1)."""
    pieces = []
    for i, line in enumerate(DIALOGUE):
        voice, pitch = (VOICE_A, VOICE_B)[i % 2]
        pieces.append((speak(line, voice, pitch=pitch), i % 2))
    return concatenate(pieces, pause)


def write_wav(path: Path, pcm: bytes) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm)
    return path
