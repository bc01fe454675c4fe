"""Face detection: one interface, several backends, heavy imports kept lazy.

Every backend takes RGB frames (uint8 numpy arrays, H x W x 3) and returns, per frame,
the faces it found as boxes in coordinates normalised to that frame (0..1), so the
analysis never cares which size a backend wanted. Backends live in their own modules
and are imported only when `make_detector` asks for them: the API process must never
import torch or a TFLite runtime.
"""

from __future__ import annotations

from pathlib import Path

from render_nodes.faces.base import BACKENDS, DetectorUnavailable, FaceBox, FaceDetector

__all__ = ["BACKENDS", "DetectorUnavailable", "FaceBox", "FaceDetector", "make_detector"]


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
