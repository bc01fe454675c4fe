"""Ground-truth test media made with ffmpeg (tests, benchmarks): nothing binary is committed.

Faces moved along known paths (a real photo: scikit-image's astronaut) and dialogues read
by espeak-ng with known turn times. The plain sample video is reelfarm.samples.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# A head-and-shoulders patch of scikit-image's astronaut photo (512x512) and, inside
# it, the face itself (x, y, w, h) in patch pixels: what a detector should box.
_HEAD_PATCH = (slice(10, 210), slice(135, 315))
_FACE_IN_PATCH = (35, 40, 110, 140)


@dataclass(frozen=True)
class FaceShot:
    """One shot of a ground-truth face video.

    `faces` are functions of shot-relative time returning the face centre in pixels;
    `face_height` is the face's height in pixels (the photo is scaled to it).
    """

    seconds: float
    background: tuple[int, int, int]
    faces: tuple[Callable[[float], tuple[float, float]], ...] = ()
    face_height: int = 110


def make_face_video(path: Path, shots: list[FaceShot], *, size: tuple[int, int] = (640, 360), rate: int = 25,
                    preset: str = "veryfast") -> list[list[tuple[float, float, float, float]]]:
    """Write an H.264 video of a real face photo moved along known paths, cut into `shots`.

    Returns the ground truth: per frame, the face boxes (x, y, w, h) in pixels.
    Needs numpy and scikit-image (test and benchmark dependencies).
    """
    import numpy as np
    from skimage import data
    from skimage.transform import resize

    width, height = size
    head = data.astronaut()[_HEAD_PATCH]
    fx, fy, fw, fh = _FACE_IN_PATCH
    rng = np.random.default_rng(7)
    truth: list[list[tuple[float, float, float, float]]] = []
    path.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(rate), "-i", "-",
         "-f", "lavfi", "-i", "sine=frequency=330:sample_rate=48000",
         "-map", "0:v", "-map", "1:a", "-shortest",
         "-c:v", "libx264", "-preset", preset, "-pix_fmt", "yuv420p", "-c:a", "aac", str(path)],
        stdin=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdin is not None
    for shot in shots:
        scale = shot.face_height / fh
        patch = (resize(head, (round(head.shape[0] * scale), round(head.shape[1] * scale)),
                        anti_aliasing=True) * 255).astype(np.uint8)
        ph, pw = patch.shape[:2]
        texture = rng.integers(-12, 12, size=(height, width, 1), dtype=np.int16)
        background = np.clip(np.array(shot.background, np.int16) + texture, 0, 255).astype(np.uint8)
        for k in range(round(shot.seconds * rate)):
            frame = background.copy()
            boxes = []
            for face in shot.faces:
                cx, cy = face(k / rate)
                # Place the patch so the face (not the patch) is centred on (cx, cy).
                left = round(cx - (fx + fw / 2) * scale)
                top = round(cy - (fy + fh / 2) * scale)
                x0, y0 = max(0, left), max(0, top)
                x1, y1 = min(width, left + pw), min(height, top + ph)
                if x1 > x0 and y1 > y0:
                    frame[y0:y1, x0:x1] = patch[y0 - top : y1 - top, x0 - left : x1 - left]
                boxes.append((left + fx * scale, top + fy * scale, fw * scale, fh * scale))
            truth.append(boxes)
            proc.stdin.write(frame.tobytes())
    proc.stdin.close()
    if proc.wait() != 0:
        raise RuntimeError(f"ffmpeg failed writing {path}")
    return truth


@dataclass(frozen=True)
class SpokenTurn:
    """A line of a synthetic dialogue, as it lands in the video made from it."""

    speaker: int
    text: str
    start: float = 0.0
    end: float = 0.0


# Two espeak-ng voices a recogniser and a speaker clusterer both tell apart well.
DIALOGUE_VOICES = (("en-us+m3", 40), ("en-us+f3", 70))


def make_spoken_video(path: Path, turns: list[tuple[int, str]], *, pause: float = 0.8, size: str = "320x240",
                      rate: int = 15, words_per_minute: int = 150, lead_in: float = 1.0) -> list[SpokenTurn]:  # fmt: skip
    """A video whose audio is a dialogue read by espeak-ng (apt espeak-ng), one voice per
    speaker (DIALOGUE_VOICES), `pause` seconds between turns, over a plain test pattern.

    Returns each turn with its start and end in the video: the ground truth for tests and
    benchmarks of transcription, moment selection and speaker turns.
    """
    import tempfile
    import wave

    import numpy as np

    rate_hz = 16000
    pieces: list[np.ndarray] = [np.zeros(int(lead_in * rate_hz), dtype=np.int16)]
    placed: list[SpokenTurn] = []
    cursor = lead_in
    with tempfile.TemporaryDirectory() as tmp:
        for i, (speaker, text) in enumerate(turns):
            voice, pitch = DIALOGUE_VOICES[speaker % len(DIALOGUE_VOICES)]
            raw = Path(tmp) / f"{i}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(words_per_minute), "-w", str(raw),
                            text], check=True, capture_output=True)  # fmt: skip
            pcm = subprocess.run(["ffmpeg", "-v", "error", "-i", str(raw), "-ar", str(rate_hz), "-ac", "1", "-f", "s16le",
                                  "-"], check=True, capture_output=True).stdout  # fmt: skip
            samples = np.frombuffer(pcm, dtype=np.int16)
            seconds = len(samples) / rate_hz
            placed.append(SpokenTurn(speaker, text, round(cursor, 3), round(cursor + seconds, 3)))
            pieces += [samples, np.zeros(int(pause * rate_hz), dtype=np.int16)]
            cursor += seconds + pause
        audio = Path(tmp) / "dialogue.wav"
        with wave.open(str(audio), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(rate_hz)
            out.writeframes(np.concatenate(pieces).tobytes())
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                        "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}", "-i", str(audio),
                        "-t", f"{cursor:.3f}", "-c:v", "libx264", "-preset", "ultrafast", "-g", str(rate * 4),
                        "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", str(path)], check=True)  # fmt: skip
    return placed
