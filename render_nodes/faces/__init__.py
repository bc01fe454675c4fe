"""Face detection: one interface, several backends, heavy imports kept lazy.

Every backend takes RGB frames (uint8 numpy arrays, H x W x 3) and returns, per frame,
the faces it found as boxes in coordinates normalised to that frame (0..1), so the
analysis never cares which size a backend wanted. Backends live in their own modules
and are imported only when `make_detector` asks for them: the API process must never
import torch or a TFLite runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

BACKENDS = ("blazeface", "ultralytics")


class DetectorUnavailable(RuntimeError):
    """The backend cannot run here (package missing, model file missing or wrong)."""


@dataclass(frozen=True)
class FaceBox:
    """A face in normalised frame coordinates: (x, y) is the top-left corner."""

    x: float
    y: float
    w: float
    h: float
    score: float

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2

    @property
    def area(self) -> float:
        return self.w * self.h


class FaceDetector(Protocol):
    name: str
    # Longest side, in pixels, of the frames this backend works best on: the sampler
    # scales frames to it (never above 640) so nothing is decoded bigger than needed.
    input_size: int

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[FaceBox]]:
        """Faces per frame, best first. Batches as large as the caller likes."""


def make_detector(backend: str = "blazeface", *, model_path: str | Path | None = None,
                  device: str | None = None) -> FaceDetector:
    """Build a detector; raises DetectorUnavailable with a readable reason if it cannot run."""
    if backend == "blazeface":
        from render_nodes.faces.blazeface import BlazeFaceDetector

        return BlazeFaceDetector(model_path=model_path)
    if backend == "ultralytics":
        from render_nodes.faces.yolo import UltralyticsDetector

        if model_path is None:
            raise DetectorUnavailable("the ultralytics backend needs a model path (REELFARM_FACE_MODEL_PATH)")
        return UltralyticsDetector(model_path=model_path, device=device)
    raise DetectorUnavailable(f"unknown face detector backend {backend!r}; expected one of {list(BACKENDS)}")
