"""Transcription benchmark: word error rate and speed of each engine on the same audio.

Three recordings made with espeak-ng (apt espeak-ng) from text unlike the tests' own:
(a) five paragraphs on varied topics in one voice; (b) the same with white noise mixed in
at 10 dB SNR (against the speech's own power); (c) two voices alternating sentence by
sentence. Each engine transcribes each recording as a render node's transcribe task does
(voice activity, then batches of ~15 s of utterances; Whisper's words fitted to the sound).
Baseline, in the same run: PocketSphinx, the engine before Whisper became the default.

Targets (issue 14): WER <= 0.15 on (a), <= 0.25 on (b); transcription <= 0.25x the audio's
duration (real-time factor), on this machine, for the default engine.

Run:
    .venv/bin/python bench/transcribe.py            # ~2 minutes on 2 cores; --json FILE
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import jiwer
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from render_nodes.speech import whisper_models  # noqa: E402
from render_nodes.speech.transcribe import FasterWhisperTranscriber, PocketSphinxTranscriber  # noqa: E402
from render_nodes.speech.vad import speech_segments  # noqa: E402

SAMPLE_RATE = 16000
BATCH_SECONDS = 15.0  # render_nodes/tasks/transcribe.py PROGRESS_BATCH_SECONDS
SNR_DB = 10.0

PARAGRAPHS = [
    "The harbour was quiet before dawn. Fishing boats rocked against the pier while gulls waited on the "
    "posts. An old man mended his nets by the light of a single lamp, humming a song his father taught him.",
    "Solar panels have become much cheaper over the last decade. A typical roof can now produce most of the "
    "electricity a family needs, and batteries store the surplus for the evening when prices are highest.",
    "To bake good bread you need flour, water, salt and time. Mix the dough, let it rest overnight in a cool "
    "place, then shape the loaf and bake it in a very hot oven until the crust turns deep brown.",
    "The museum opened a new wing dedicated to ancient maps. Visitors can trace how sailors imagined the "
    "world, from coastlines drawn by hand to the first charts that showed the shape of distant continents.",
    "Our team reviews every support ticket within two hours. If a customer reports a bug, an engineer "
    "reproduces it, writes a test that fails, fixes the code, and replies with the version that solves it.",
]
VOICE = "en-us+f3"
DIALOGUE_VOICES = (("en-us+m3", 40), ("en-us+f4", 75))


def speak(text: str, voice: str, pitch: int | None = None) -> np.ndarray:
    cmd = ["espeak-ng", "-v", voice, "-s", "160", "--stdout"] + (["-p", str(pitch)] if pitch is not None else [])
    wav = subprocess.run([*cmd, text], capture_output=True, check=True).stdout
    pcm = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-i", "pipe:0", "-ac", "1",
                          "-ar", str(SAMPLE_RATE), "-f", "s16le", "pipe:1"], input=wav, capture_output=True,
                         check=True).stdout  # fmt: skip
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def join(pieces: list[np.ndarray], pause: float = 0.7) -> np.ndarray:
    gap = np.zeros(int(pause * SAMPLE_RATE))
    out = [gap]
    for piece in pieces:
        out += [piece, gap]
    return np.concatenate(out)


def with_noise(speech: np.ndarray, snr_db: float, seed: int = 7) -> np.ndarray:
    voiced = speech[np.abs(speech) > 300]
    power = float(np.mean(voiced**2)) if voiced.size else 1.0
    noise = np.random.default_rng(seed).normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), speech.size)
    return speech + noise


def to_pcm(x: np.ndarray) -> bytes:
    return np.clip(np.rint(x), -32768, 32767).astype("<i2").tobytes()


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def recordings() -> dict[str, tuple[bytes, str]]:
    clean = join([speak(p, VOICE) for p in PARAGRAPHS])
    sentences = [s for p in PARAGRAPHS for s in re.split(r"(?<=[.!?])\s+", p)]
    dialogue = join([speak(s, *DIALOGUE_VOICES[i % 2]) for i, s in enumerate(sentences)], pause=0.5)
    reference = " ".join(PARAGRAPHS)
    return {
        "(a) clean, one voice": (to_pcm(clean), reference),
        f"(b) noise at {SNR_DB:g} dB SNR": (to_pcm(with_noise(clean, SNR_DB)), reference),
        "(c) two voices alternating": (to_pcm(dialogue), " ".join(sentences)),
    }


def transcribe_as_a_task(transcriber, pcm: bytes, language: str | None) -> tuple[str, float]:
    """Words and the seconds spent, batching utterances as the transcribe task does."""
    speech = speech_segments(pcm)
    batches: list[list[tuple[float, float]]] = [[]]
    for a, b in speech:
        if sum(y - x for x, y in batches[-1]) >= BATCH_SECONDS:
            batches.append([])
        batches[-1].append((a, b))
    began = time.perf_counter()
    words = []
    for batch in batches:
        words += transcriber.transcribe(pcm, speech=batch, language=language)
    return " ".join(w.text for w in words), time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    audio = recordings()
    engines = {
        "pocketsphinx (baseline)": (PocketSphinxTranscriber(), None),
        "faster-whisper tiny.en (English only)": (FasterWhisperTranscriber(whisper_models.packaged("tiny.en")), "en"),
        "faster-whisper base (default)": (FasterWhisperTranscriber(whisper_models.packaged("base")), "en"),
    }  # fmt: skip
    results: dict[str, dict] = {}
    print(f"{'engine':<44} {'recording':<28} {'audio s':>8} {'WER':>6} {'RTF':>6} {'x realtime':>11}")
    for engine, (transcriber, language) in engines.items():
        for name, (pcm, reference) in audio.items():
            seconds = len(pcm) / 2 / SAMPLE_RATE
            heard, spent = transcribe_as_a_task(transcriber, pcm, language)
            wer = jiwer.wer(normalise(reference), normalise(heard))
            results.setdefault(engine, {})[name] = {"wer": round(wer, 3), "rtf": round(spent / seconds, 3),
                                                    "audio_seconds": round(seconds, 1)}  # fmt: skip
            print(f"{engine:<44} {name:<28} {seconds:>8.1f} {wer:>6.3f} {spent / seconds:>6.3f} "
                  f"{seconds / spent:>10.1f}x")
    default, baseline = results["faster-whisper base (default)"], results["pocketsphinx (baseline)"]
    clean, noisy = "(a) clean, one voice", f"(b) noise at {SNR_DB:g} dB SNR"
    worst_rtf = max(r["rtf"] for r in default.values())
    print(f"\ndefault vs baseline, WER: (a) {default[clean]['wer']:.3f} vs {baseline[clean]['wer']:.3f} "
          f"(x{default[clean]['wer'] / max(baseline[clean]['wer'], 1e-9):.2f}), (b) {default[noisy]['wer']:.3f} vs "
          f"{baseline[noisy]['wer']:.3f} (x{default[noisy]['wer'] / max(baseline[noisy]['wer'], 1e-9):.2f})")
    met = default[clean]["wer"] <= 0.15 and default[noisy]["wer"] <= 0.25 and worst_rtf <= 0.25
    print(f"targets (WER <= 0.15 on (a), <= 0.25 on (b), RTF <= 0.25): (a) {default[clean]['wer']:.3f}, "
          f"(b) {default[noisy]['wer']:.3f}, worst RTF {worst_rtf:.3f} -> {'met' if met else 'NOT met'}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
