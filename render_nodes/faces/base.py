"""The face detector interface every backend implements (kept apart so backends import it, not the package)."""

from __future__ import annotations

from dataclasses import dataclass
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
