"""Optional face detector on Ultralytics YOLO (the GPU extra), with an operator-supplied model.

The model file is the operator's: a YOLO face model (any class named like "face"), or a
COCO-style model whose "person" boxes are turned into a head region (see
`head_box_from_person`). `.pt` checkpoints, `.onnx` exports (needs onnxruntime) and
TensorRT `.engine` files (needs tensorrt) are accepted. Ultralytics is imported lazily, only
when a detector is built, and only after it has been told to stay offline: it would
otherwise check connectivity, send usage events, pip-install missing requirements and fetch
unknown weight names from GitHub. Paths that do not exist are refused before it is imported.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from render_nodes.faces.base import DetectorUnavailable, FaceBox

MODEL_SUFFIXES = (".pt", ".onnx", ".engine")
MODEL_INPUT_SIZE = 640
# Tasks whose results carry detection boxes (pose and segment models box people too).
BOX_TASKS = ("detect", "segment", "pose")

DEFAULT_SCORE_THRESHOLD = 0.25
DEFAULT_IOU_THRESHOLD = 0.5
DEFAULT_MAX_DETECTIONS = 100
# Frames per inference call: bounds GPU memory whatever batch the caller hands in.
DEFAULT_MAX_BATCH = 32

# Person box -> head square: a head is about the top fifth of a standing person's box; when
# the box is cut off below the shoulders (talking heads, the usual source here) it is much
# less tall, and the head is then sized from the box width (about half the shoulders).
HEAD_HEIGHT_FRACTION = 0.2
HEAD_WIDTH_FRACTION = 0.45

INSTALL_HINT = (
    "install the GPU extra: pip install 'reelfarm[gpu]', i.e. torch==2.13.0 torchvision==0.28.0 ultralytics "
    "from PyPI (their CUDA builds, which also run on CPU); torchvision's operators do not load with the "
    "CPU-only torch wheel")

# Read by ultralytics when it is first imported. "true" rather than "1": older releases
# compare YOLO_OFFLINE with the string "true"; newer ones accept both.
OFFLINE_ENVIRONMENT = {
    "YOLO_OFFLINE": "true",  # no DNS probe, so no usage events, no AutoUpdate
    "YOLO_AUTOINSTALL": "false",  # never pip install a missing requirement
}

_FACE_NAME = re.compile(r"(^|[^a-z])faces?([^a-z]|$)")
_PERSON_NAME = re.compile(r"(^|[^a-z])(person|persons|people)([^a-z]|$)")


def default_config_dir() -> Path:
    """A private, writable settings directory for ultralytics (it writes settings.json there)."""
    base = Path(tempfile.gettempdir()) / f"reelfarm-ultralytics-{os.getuid()}"
    try:
        base.mkdir(mode=0o700, exist_ok=True)
        info = base.stat()
        if info.st_uid == os.getuid() and not info.st_mode & 0o022 and os.access(base, os.W_OK):
            return base
    except OSError:
        pass
    # Someone else's (or an unusable) directory under that name: make a fresh one.
    return Path(tempfile.mkdtemp(prefix="reelfarm-ultralytics-"))


def offline_environment(config_dir: str | Path | None = None) -> dict[str, str]:
    """The environment ultralytics must see when it is imported."""
    directory = Path(config_dir) if config_dir is not None else default_config_dir()
    directory.mkdir(parents=True, exist_ok=True)
    return {**OFFLINE_ENVIRONMENT, "YOLO_CONFIG_DIR": str(directory)}


def import_ultralytics(config_dir: str | Path | None = None) -> Any:
    """Make ultralytics offline, import it, and return its `YOLO` class.

    Raises DetectorUnavailable when ultralytics, torch or torchvision cannot be imported, or
    when ultralytics was already imported in this process without the offline settings.
    """
    if "ultralytics" not in sys.modules:
        os.environ.update(offline_environment(config_dir))
    # Ultralytics imports torchvision only when it predicts (for its NMS): import it here so
    # a torch/torchvision mismatch fails now, readably, and not on the first frame.
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
        import ultralytics.utils
        from ultralytics import YOLO
    except ImportError as exc:
        raise DetectorUnavailable(f"the ultralytics backend cannot import {exc.name or exc}: {INSTALL_HINT}") \
            from exc
    except Exception as exc:  # torchvision raises RuntimeError when its C++ ops do not match torch
        raise DetectorUnavailable(f"the ultralytics backend cannot load torch/torchvision ({exc}): {INSTALL_HINT}") \
            from exc
    online = getattr(ultralytics.utils, "ONLINE", False)
    autoinstall = getattr(ultralytics.utils, "AUTOINSTALL", False)
    if online or autoinstall:
        raise DetectorUnavailable(
            "ultralytics was imported before the face detector could make it offline "
            f"(ONLINE={online}, AUTOINSTALL={autoinstall}); set "
            + " ".join(f"{key}={value}" for key, value in OFFLINE_ENVIRONMENT.items())
            + " in the render node's environment")
    return YOLO


def half_precision_arguments() -> dict[str, Any]:
    """Predict arguments for FP16: `quantize=16` since ultralytics 8.4 deprecated `half=True`."""
    from ultralytics.cfg import DEFAULT_CFG_DICT

    return {"quantize": 16} if "quantize" in DEFAULT_CFG_DICT else {"half": True}


def check_model_path(model_path: str | Path) -> Path:
    """Refuse what ultralytics would try to download or cannot load; no ultralytics import."""
    path = Path(model_path).expanduser()
    if not path.exists():
        # Ultralytics takes a name it cannot find for one of its release assets and downloads it.
        raise DetectorUnavailable(f"ultralytics face model not found: {path}")
    if not path.is_file():
        raise DetectorUnavailable(f"ultralytics face model is not a file: {path}")
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise DetectorUnavailable(
            f"unsupported ultralytics model file {path.name}: expected one of {', '.join(MODEL_SUFFIXES)}")
    return path.resolve()


def choose_classes(names: dict[int, str] | Sequence[str]) -> tuple[str, tuple[int, ...]]:
    """("face", ids) for a face model, ("person", ids) for a model that has people; else refuse."""
    items = names.items() if isinstance(names, dict) else enumerate(names)
    labels = {int(index): str(label).strip().lower() for index, label in items}
    faces = tuple(sorted(index for index, label in labels.items() if _FACE_NAME.search(label)))
    if faces:
        return "face", faces
    people = tuple(sorted(index for index, label in labels.items() if _PERSON_NAME.search(label)))
    if people:
        return "person", people
    shown = ", ".join(repr(label) for _, label in sorted(labels.items())[:10])
    raise DetectorUnavailable(
        f"the model has no 'face' or 'person' class (classes: {shown}{', ...' if len(labels) > 10 else ''})")


def head_box_from_person(x1: float, y1: float, x2: float, y2: float) -> tuple[float, float, float, float]:
    """A person box (pixels) -> a square head box (pixels) at its top, centred across it."""
    width, height = x2 - x1, y2 - y1
    side = max(HEAD_HEIGHT_FRACTION * height, HEAD_WIDTH_FRACTION * width)
    side = max(0.0, min(side, width, height))
    centre = (x1 + x2) / 2
    return centre - side / 2, y1, centre + side / 2, y1 + side


def normalise_box(x1: float, y1: float, x2: float, y2: float, width: int, height: int,
                  score: float) -> FaceBox | None:
    """A box in frame pixels -> a FaceBox in 0..1 frame coordinates, clipped; None if empty."""
    if width <= 0 or height <= 0 or not all(np.isfinite((x1, y1, x2, y2, score))):
        return None
    left, right = min(max(x1, 0.0), width) / width, min(max(x2, 0.0), width) / width
    top, bottom = min(max(y1, 0.0), height) / height, min(max(y2, 0.0), height) / height
    if right <= left or bottom <= top:
        return None
    return FaceBox(x=float(left), y=float(top), w=float(right - left), h=float(bottom - top), score=float(score))


def faces_from_detections(xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, width: int, height: int,
                          *, kind: str, keep: Iterable[int]) -> list[FaceBox]:
    """One frame's detections (pixel boxes, scores, class ids) -> faces, best first.

    kind "face": the boxes of the `keep` classes are the faces; kind "person": each box of a
    `keep` class becomes its head square.
    """
    if kind not in ("face", "person"):
        raise ValueError(f"kind must be 'face' or 'person', not {kind!r}")
    keep = {int(index) for index in keep}
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    class_ids = np.asarray(class_ids).reshape(-1)
    faces = []
    for box, score, class_id in zip(xyxy.tolist(), scores.tolist(), class_ids.tolist()):
        if int(class_id) not in keep:
            continue
        if kind == "person":
            box = head_box_from_person(*box)
        face = normalise_box(*box, width, height, score)
        if face is not None:
            faces.append(face)
    faces.sort(key=lambda face: face.score, reverse=True)
    return faces


def check_frame(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"expected an RGB frame of shape (H, W, 3), got {frame.shape}")
    if frame.dtype != np.uint8:
        raise ValueError(f"expected a uint8 RGB frame, got {frame.dtype}")
    return frame


class UltralyticsDetector:
    """Face detector on an Ultralytics YOLO model: batched, on CUDA when there is one."""

    input_size = MODEL_INPUT_SIZE

    def __init__(self, model_path: str | Path, device: str | None = None, *,
                 score_threshold: float = DEFAULT_SCORE_THRESHOLD, iou_threshold: float = DEFAULT_IOU_THRESHOLD,
                 max_detections: int = DEFAULT_MAX_DETECTIONS, max_batch: int = DEFAULT_MAX_BATCH,
                 config_dir: str | Path | None = None) -> None:
        path = check_model_path(model_path)  # before any import: a missing name means a download
        YOLO = import_ultralytics(config_dir)
        import torch

        cuda = torch.cuda.is_available()
        if device is None or device == "auto":
            device = "cuda:0" if cuda else "cpu"
        if str(device).startswith("cuda") and not cuda:
            raise DetectorUnavailable(f"device {device!r} asked for, but torch sees no CUDA device")
        self.device = str(device)
        self.model_path = path
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        self.max_detections = max_detections
        self.max_batch = max(1, int(max_batch))
        # Half precision for checkpoints on a GPU; exported models keep the precision they were
        # exported with.
        self._precision = half_precision_arguments() \
            if self.device.startswith("cuda") and path.suffix.lower() == ".pt" else {}
        try:
            self._model = YOLO(str(path))
        except Exception as exc:  # corrupt file, missing onnxruntime/tensorrt, wrong format...
            raise DetectorUnavailable(f"cannot load the ultralytics model {path}: {exc}") from exc
        task = getattr(self._model, "task", None)
        if task not in BOX_TASKS:
            raise DetectorUnavailable(f"ultralytics model {path.name} is a {task!r} model; expected one of {BOX_TASKS}")
        # One tiny inference sets the predictor up on the device (exported models only know
        # their class names after it) and proves the model runs here.
        self._classes: list[int] | None = None
        self._lock = threading.Lock()
        try:
            self._predict([np.zeros((32, 32, 3), dtype=np.uint8)])
            names = self._model.names
        except Exception as exc:
            raise DetectorUnavailable(f"the ultralytics model {path} does not run on {self.device}: {exc}") from exc
        self.kind, classes = choose_classes(names)
        self._classes = list(classes)
        self.name = f"ultralytics-{'face' if self.kind == 'face' else 'person-head'}:{path.name}"

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[FaceBox]]:
        checked = [check_frame(frame) for frame in frames]
        found: list[list[FaceBox]] = []
        for start in range(0, len(checked), self.max_batch):
            chunk = checked[start:start + self.max_batch]
            with self._lock:  # the predictor is stateful: one batch at a time per detector
                results = self._predict(chunk)
            for frame, result in zip(chunk, results, strict=True):
                found.append(self._faces(result, frame.shape[1], frame.shape[0]))
        return found

    def _predict(self, frames: list[np.ndarray]) -> list[Any]:
        # Ultralytics takes numpy frames as OpenCV BGR; ours are RGB.
        bgr = [np.ascontiguousarray(frame[..., ::-1]) for frame in frames]
        return self._model.predict(
            bgr, imgsz=self.input_size, conf=self.score_threshold, iou=self.iou_threshold,
            max_det=self.max_detections, classes=self._classes, device=self.device, verbose=False, save=False,
            stream=False, **self._precision)

    def _faces(self, result: Any, width: int, height: int) -> list[FaceBox]:
        boxes = result.boxes
        if boxes is None or len(boxes) == 0:
            return []
        return faces_from_detections(
            boxes.xyxy.float().cpu().numpy(), boxes.conf.float().cpu().numpy(), boxes.cls.cpu().numpy(),
            width, height, kind=self.kind, keep=self._classes)
