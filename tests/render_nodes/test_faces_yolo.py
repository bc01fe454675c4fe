"""Ultralytics backend: path checks and box decoding always; real inference when installed.

The inference tests build a random-weight YOLO11n from its bundled yaml (no download),
save it as a .pt with the class names a face model or a COCO model would have, and load it
through the detector with every socket call refused. Random weights give arbitrary boxes,
so those tests check the plumbing (one list per frame, boxes inside the frame, best first);
the decoding itself is checked on exact numbers by the pure-function tests.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from pathlib import Path

import numpy as np
import pytest

from render_nodes.faces import DetectorUnavailable, FaceBox, make_detector
from render_nodes.faces.yolo import (
    INSTALL_HINT,
    OFFLINE_ENVIRONMENT,
    choose_classes,
    faces_from_detections,
    head_box_from_person,
    normalise_box,
)

FRAME_SIZES = ((360, 640), (640, 360), (250, 250))  # (height, width): landscape, portrait, square


# --- Always run: nothing here imports ultralytics, torch or torchvision. -----------------------

@pytest.fixture
def no_ultralytics(monkeypatch):
    """Make any import of ultralytics, torch or torchvision fail, as on a node without the extra."""
    for name in ("ultralytics", "torch", "torchvision"):
        monkeypatch.setitem(sys.modules, name, None)


def test_missing_model_path_is_refused_before_importing_ultralytics(tmp_path, no_ultralytics):
    # Ultralytics would take a missing name for a release asset and fetch it from GitHub.
    with pytest.raises(DetectorUnavailable, match="not found"):
        make_detector("ultralytics", model_path=tmp_path / "yolo11n-face.pt")


def test_unknown_extension_and_directories_are_refused(tmp_path, no_ultralytics):
    model = tmp_path / "face.tflite"
    model.write_bytes(b"\0" * 16)
    with pytest.raises(DetectorUnavailable, match=r"\.pt, \.onnx, \.engine"):
        make_detector("ultralytics", model_path=model)
    folder = tmp_path / "face_openvino_model"
    folder.mkdir()
    with pytest.raises(DetectorUnavailable, match="not a file"):
        make_detector("ultralytics", model_path=folder)


def test_model_path_is_required():
    with pytest.raises(DetectorUnavailable, match="model path"):
        make_detector("ultralytics")


def test_missing_packages_name_the_gpu_extra(tmp_path, no_ultralytics):
    model = tmp_path / "face.pt"
    model.write_bytes(b"\0" * 16)
    with pytest.raises(DetectorUnavailable) as excinfo:
        make_detector("ultralytics", model_path=model)
    assert INSTALL_HINT in str(excinfo.value)
    assert "reelfarm[gpu]" in str(excinfo.value)


def test_face_classes_are_preferred_to_people():
    assert choose_classes({0: "face"}) == ("face", (0,))
    assert choose_classes({0: "person", 1: "Human_Face", 2: "faces"}) == ("face", (1, 2))
    assert choose_classes({0: "person", 1: "bicycle", 2: "car"}) == ("person", (0,))
    assert choose_classes(["cat", "people"]) == ("person", (1,))
    # "surface" is no face, "personal_item" no person.
    with pytest.raises(DetectorUnavailable, match="no 'face' or 'person' class"):
        choose_classes({0: "surface", 1: "personal_item", 2: "0"})


def test_head_of_a_standing_person_is_the_top_fifth():
    # 100 x 300 px standing person at (50, 20): head 60 px square, top-centred.
    assert head_box_from_person(50, 20, 150, 320) == pytest.approx((70, 20, 130, 80))


def test_head_of_a_person_cut_at_the_chest_is_sized_from_the_shoulders():
    # Talking head: a 400 x 450 px box (shoulders up). A fifth of its height (90 px) would be a
    # chin; 0.45 of its width (180 px) is the head.
    assert head_box_from_person(100, 30, 500, 480) == pytest.approx((210, 30, 390, 210))


def test_head_never_outgrows_a_flat_person_box():
    x1, y1, x2, y2 = head_box_from_person(0, 0, 300, 40)  # someone lying down, or a sliver
    assert (x2 - x1, y2 - y1) == pytest.approx((40, 40))
    assert (x1 + x2) / 2 == pytest.approx(150)


def test_normalise_box_clips_to_the_frame():
    face = normalise_box(-20, 30, 120, 130, width=200, height=100, score=0.9)
    assert face == FaceBox(x=0.0, y=0.3, w=0.6, h=0.7, score=0.9)
    assert normalise_box(50, 50, 150, 150, width=100, height=100, score=0.5) == FaceBox(0.5, 0.5, 0.5, 0.5, 0.5)
    assert normalise_box(210, 10, 260, 40, width=200, height=100, score=0.9) is None  # wholly outside
    assert normalise_box(10, 10, 10, 40, width=200, height=100, score=0.9) is None  # no width
    assert normalise_box(10, 10, float("nan"), 40, width=200, height=100, score=0.9) is None


def test_faces_from_face_detections_keep_face_classes_best_first():
    xyxy = np.array([[10, 10, 50, 60], [100, 20, 140, 70], [0, 0, 640, 360], [600, 300, 700, 400]], np.float32)
    scores = np.array([0.6, 0.9, 0.99, 0.7], np.float32)
    classes = np.array([0, 0, 3, 0], np.float32)  # class 3 is not a face
    faces = faces_from_detections(xyxy, scores, classes, 640, 360, kind="face", keep=[0])
    assert [f.score for f in faces] == pytest.approx([0.9, 0.7, 0.6])
    assert (faces[0].x, faces[0].y, faces[0].w, faces[0].h) == pytest.approx((100 / 640, 20 / 360, 40 / 640, 50 / 360))
    # Hanging off the bottom-right corner: clipped to the frame.
    assert (faces[1].x + faces[1].w, faces[1].y + faces[1].h) == pytest.approx((1.0, 1.0))


def test_faces_from_person_detections_are_square_heads_in_pixels():
    xyxy = np.array([[300, 40, 400, 340]], np.float32)  # standing person in a 640 x 360 frame
    faces = faces_from_detections(xyxy, [0.8], [0], 640, 360, kind="person", keep=[0])
    assert len(faces) == 1
    face = faces[0]
    assert (face.x, face.y, face.w, face.h, face.score) == pytest.approx((320 / 640, 40 / 360, 60 / 640, 60 / 360, 0.8))
    assert face.w * 640 == pytest.approx(face.h * 360)  # square on screen
    assert faces_from_detections(np.zeros((0, 4)), [], [], 640, 360, kind="person", keep=[0]) == []


# --- Real inference: needs ultralytics (and a torch/torchvision pair that load together). -----

class NetworkGuard:
    """Socket calls fail and are recorded while the guard is on."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    def refuse(self, what: str):
        def refused(*args, **kwargs):
            self.attempts.append(f"{what}{args[:2]!r}")
            raise OSError(f"network access in a test: {what}")
        return refused


@pytest.fixture(scope="module")
def network_guard():
    guard = NetworkGuard()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", guard.refuse("getaddrinfo"))
        patch.setattr(socket, "create_connection", guard.refuse("create_connection"))
        patch.setattr(socket.socket, "connect", guard.refuse("connect"))
        patch.setattr(socket.socket, "connect_ex", guard.refuse("connect_ex"))
        yield guard
    assert guard.attempts == [], f"the ultralytics backend touched the network: {guard.attempts}"


@pytest.fixture(scope="module")
def yolo(network_guard, tmp_path_factory):
    """The YOLO class, imported the way the detector imports it (offline settings first)."""
    from render_nodes.faces.yolo import import_ultralytics, offline_environment

    # The offline settings go in before ultralytics is first imported, as the detector does it.
    config_dir = tmp_path_factory.mktemp("ultralytics-config")
    if "ultralytics" not in sys.modules and importlib.util.find_spec("ultralytics") is not None:
        os.environ.update(offline_environment(config_dir))
    pytest.importorskip("ultralytics", reason="ultralytics is not installed (the GPU extra)")
    try:
        return import_ultralytics(config_dir)
    except DetectorUnavailable as exc:  # e.g. the CPU torch wheel with PyPI's CUDA torchvision
        pytest.skip(f"ultralytics is installed but cannot run here: {exc}")


@pytest.fixture(scope="module")
def random_model(yolo, tmp_path_factory):
    """Save a random-weight YOLO11n (80 classes) under given class names; returns a maker."""
    import torch

    directory = tmp_path_factory.mktemp("models")
    saved: dict[str, Path] = {}

    def save(name: str, class_names: dict[int, str]) -> Path:
        if name in saved:
            return saved[name]
        torch.manual_seed(0)
        model = yolo("yolo11n.yaml")  # the architecture ships with ultralytics; weights random
        model.model.names = {i: class_names.get(i, f"class{i}") for i in range(80)}
        path = directory / f"{name}.pt"
        model.save(path)
        saved[name] = path
        return path

    return save


def frames_of_sizes(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for height, width in FRAME_SIZES]


def check_plumbing(found: list[list[FaceBox]], frames: list[np.ndarray]) -> None:
    assert isinstance(found, list) and len(found) == len(frames)
    for faces in found:
        assert isinstance(faces, list)
        for face in faces:
            assert isinstance(face, FaceBox)
            assert 0.0 <= face.x < face.x + face.w <= 1.0 + 1e-9
            assert 0.0 <= face.y < face.y + face.h <= 1.0 + 1e-9
            assert 0.0 < face.score <= 1.0
        assert [f.score for f in faces] == sorted((f.score for f in faces), reverse=True)


def test_offline_settings_are_in_force(yolo):
    import ultralytics.utils

    for key, value in OFFLINE_ENVIRONMENT.items():
        assert os.environ[key] == value
    assert Path(os.environ["YOLO_CONFIG_DIR"]).is_dir()
    assert ultralytics.utils.ONLINE is False
    assert ultralytics.utils.AUTOINSTALL is False


def test_face_model_detects_a_batch_of_frames_of_different_sizes(random_model):
    from render_nodes.faces.yolo import UltralyticsDetector

    detector = make_detector("ultralytics", model_path=random_model("face", {0: "face"}), device="cpu")
    assert isinstance(detector, UltralyticsDetector)
    assert detector.kind == "face" and detector.name == "ultralytics-face:face.pt"
    assert detector.input_size == 640 and detector.device == "cpu"
    frames = frames_of_sizes()
    check_plumbing(detector.detect(frames), frames)
    assert detector.detect([]) == []


def test_person_model_gives_heads_and_decodes_real_results(random_model):
    from render_nodes.faces.yolo import UltralyticsDetector

    # A threshold under the random head's initial class scores (~1e-5), so that every frame
    # has boxes and the decoding of real ultralytics results is exercised.
    detector = UltralyticsDetector(random_model("coco", {0: "person", 1: "bicycle"}), device="cpu",
                                   score_threshold=1e-7, max_detections=20, max_batch=2)
    assert detector.kind == "person" and detector.name == "ultralytics-person-head:coco.pt"
    frames = frames_of_sizes(seed=1)
    found = detector.detect(frames)  # 3 frames in batches of at most 2
    check_plumbing(found, frames)
    assert all(0 < len(faces) <= 20 for faces in found)
    for faces, frame in zip(found, frames):
        height, width = frame.shape[:2]
        for face in faces:  # heads are squares on screen unless clipped by the frame edge
            if face.x > 0 and face.y > 0 and face.x + face.w < 1 and face.y + face.h < 1:
                assert face.w * width == pytest.approx(face.h * height, rel=1e-4)


def test_rgb_frames_are_given_to_ultralytics_as_bgr(random_model, monkeypatch):
    from render_nodes.faces.yolo import UltralyticsDetector

    detector = UltralyticsDetector(random_model("face", {0: "face"}), device="cpu")
    seen = []
    monkeypatch.setattr(detector._model, "predict", lambda frames, **kwargs: seen.extend(frames) or [])
    frame = np.zeros((8, 8, 3), dtype=np.uint8)
    frame[..., 0] = 255  # pure red in RGB
    detector._predict([frame])
    assert seen[0][0, 0].tolist() == [0, 0, 255]  # red in BGR


def test_model_without_face_or_person_is_refused(random_model):
    path = random_model("numbers", {i: str(i) for i in range(80)})
    with pytest.raises(DetectorUnavailable, match="no 'face' or 'person' class"):
        make_detector("ultralytics", model_path=path, device="cpu")


def test_corrupt_model_file_is_refused(yolo, tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(DetectorUnavailable, match="cannot load"):
        make_detector("ultralytics", model_path=path, device="cpu")


def test_cuda_device_without_cuda_is_refused(random_model):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(DetectorUnavailable, match="no CUDA device"):
        make_detector("ultralytics", model_path=random_model("face", {0: "face"}), device="cuda:0")
