"""Which speech engine a node runs, from which model, for which language; and what happens
when a model is missing or corrupted (a logged reason and a fallback, never a crash)."""

from __future__ import annotations

import dataclasses
import logging
import re
import shutil
import threading

import jiwer
import pytest

from harness import speech_samples as ss
from reelfarm.options import WHISPER_LANGUAGES
from reelfarm.storage import storage_from_url
from render_nodes.speech import whisper_models
from render_nodes.speech.engines import EngineRefused, SpeechEngines
from render_nodes.speech.transcribe import TranscriberUnavailable
from render_nodes.speech.vad import speech_segments
from render_nodes.tasks.common import TaskFailure
from render_nodes.tasks.transcribe import run_transcribe_task

pytestmark = pytest.mark.skipif(not ss.espeak_available(), reason="espeak-ng and ffmpeg are needed (apt)")

GERMAN = ("Guten Morgen zusammen. Heute sprechen wir über die Berge und über das Wetter in den Alpen. "
          "Im Winter ist es dort sehr kalt, und im Sommer wandern viele Menschen durch die Täler.")  # fmt: skip


def _words(text: str) -> str:
    """Lower-case words, letters of any language kept (umlauts included)."""
    return " ".join(re.findall(r"\w+", text.lower()))


@pytest.fixture(scope="module")
def engines() -> SpeechEngines:
    return SpeechEngines()


def test_the_default_is_whisper_with_the_shipped_models(engines):
    assert engines.available() == ["faster-whisper", "pocketsphinx"]
    assert engines.whisper_models() == ["base", "tiny.en"]
    assert engines.engine_for("auto") == engines.engine_for("") == "faster-whisper"
    assert (engines.device, engines.compute_type) == ("cpu", "int8")  # no GPU in the node's capabilities
    capabilities = engines.capabilities()
    assert capabilities["transcribers"] == ["faster-whisper", "pocketsphinx"]
    assert "de" in capabilities["transcription_languages"] and "en" in capabilities["transcription_languages"]
    # Every language goes to the multilingual model, English too (it reads English better)...
    assert engines.choose("faster-whisper", "en").model == "base"
    assert engines.choose("faster-whisper", "ja").model == "base"
    # ...unless the node is told to trade that for tiny.en's speed.
    assert SpeechEngines(english_model="tiny.en").choose("faster-whisper", "en").model == "tiny.en"
    with pytest.raises(EngineRefused, match="English only"):
        engines.choose("pocketsphinx", "de")


def test_the_engine_is_the_one_configured():
    sphinx = SpeechEngines(preference="pocketsphinx")
    assert sphinx.available() == ["pocketsphinx"] and sphinx.engine_for("auto") == "pocketsphinx"
    assert sphinx.capabilities()["transcription_languages"] == ["en"]
    # A task may ask for an engine by name; one the node lacks is refused, saying why.
    assert SpeechEngines().engine_for("pocketsphinx") == "pocketsphinx"
    with pytest.raises(TranscriberUnavailable, match="faster-whisper is not available"):
        sphinx.engine_for("faster-whisper")


def test_the_languages_are_the_multilingual_models(engines):
    """reelfarm.options.WHISPER_LANGUAGES (what the API accepts) is what the shipped model reads."""
    model = engines.acquire("faster-whisper", "base")
    try:
        assert set(model.languages) == set(WHISPER_LANGUAGES)
    finally:
        engines.release("faster-whisper", "base", model)


def test_a_missing_model_is_left_out_with_a_logged_reason(tmp_path, monkeypatch, caplog):
    missing = dataclasses.replace(whisper_models.PACKAGED["tiny.en"], package="no_such_model_package")
    monkeypatch.setitem(whisper_models.PACKAGED, "tiny.en", missing)
    with caplog.at_level(logging.WARNING):
        engines = SpeechEngines(model_dir=tmp_path / "nowhere")
    assert "no_such_model_package is not installed" in caplog.text
    assert "no Whisper model directory at" in caplog.text
    # English is still served, by the multilingual model, even where tiny.en was asked for.
    assert engines.whisper_models() == ["base"] and engines.choose("faster-whisper", "en").model == "base"
    fallback = SpeechEngines(english_model="tiny.en")
    assert fallback.choose("faster-whisper", "en").model == "base"


def test_no_whisper_model_at_all_falls_back_to_pocketsphinx(tmp_path, monkeypatch, caplog):
    for name in ("tiny.en", "base"):
        monkeypatch.setitem(whisper_models.PACKAGED, name,
                            dataclasses.replace(whisper_models.PACKAGED[name], package="gone"))  # fmt: skip
    with caplog.at_level(logging.WARNING):
        engines = SpeechEngines()
    assert engines.available() == ["pocketsphinx"] and engines.engine_for("auto") == "pocketsphinx"
    assert caplog.text.count("is not available here") == 2


def test_a_corrupted_model_is_refused_before_it_loads(tmp_path, caplog):
    shipped = whisper_models.packaged("tiny.en")
    copy = tmp_path / "tiny"
    shutil.copytree(shipped.directory, copy)
    with (copy / "model.bin").open("r+b") as f:  # one flipped byte, same size
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    expected = whisper_models.PACKAGED["tiny.en"].sha256["model.bin"]
    with pytest.raises(whisper_models.ModelUnavailable, match="corrupted or replaced"):
        whisper_models.configured(copy, expected)
    with caplog.at_level(logging.WARNING):
        engines = SpeechEngines(model_dir=copy, model_sha256=expected)
    assert "corrupted or replaced" in caplog.text
    assert "tiny.en" in engines.whisper_models()  # the shipped one, not the copy
    assert engines.models["en"].directory != copy


def test_the_split_model_is_checked_across_its_parts(tmp_path):
    """The multilingual model.bin comes in two packages: its SHA-256 is that of both parts
    read in order, so a damaged part (or the parts swapped) is refused."""
    shipped = whisper_models.packaged("base")
    assert len(shipped.parts) == 2
    assert whisper_models.sha256_of(*shipped.parts) == whisper_models.PACKAGED["base"].sha256["model.bin"]
    swapped = dataclasses.replace(shipped, parts=shipped.parts[::-1])
    with pytest.raises(whisper_models.ModelUnavailable, match="in 2 parts"):
        whisper_models.verify(swapped, whisper_models.PACKAGED["base"].sha256)
    damaged = tmp_path / "model.bin.part2"
    damaged.write_bytes(shipped.parts[1].read_bytes()[:-1])
    with pytest.raises(whisper_models.ModelUnavailable, match="corrupted or replaced"):
        whisper_models.verify(dataclasses.replace(shipped, parts=(shipped.parts[0], damaged)),
                              whisper_models.PACKAGED["base"].sha256)  # fmt: skip


def test_german_is_detected_and_read_by_the_multilingual_model(engines):
    spoken = ss.speak(GERMAN, "de")
    speech = speech_segments(spoken)
    detector = engines.detector()
    try:
        language, probability = detector.detect_language(spoken, speech)
    finally:
        engines.release("faster-whisper", "base", detector)
    assert language == "de" and probability > 0.3  # espeak-ng German: 0.46 measured, then la 0.14, en 0.13
    model = engines.acquire("faster-whisper", engines.choose("faster-whisper", language).model)
    try:
        words = model.transcribe(spoken, speech=speech, language=language)
    finally:
        engines.release("faster-whisper", "base", model)
    heard = _words(" ".join(w.text for w in words))
    assert jiwer.wer(_words(GERMAN), heard) <= 0.5, heard  # espeak's German is robotic; base is small


def test_a_language_no_engine_here_reads_is_a_clear_task_failure(tmp_path, monkeypatch):
    monkeypatch.setitem(whisper_models.PACKAGED, "base",
                        dataclasses.replace(whisper_models.PACKAGED["base"], package="gone"))  # fmt: skip
    english_only = SpeechEngines()
    assert english_only.capabilities()["transcription_languages"] == ["en"]
    wav = ss.write_wav(tmp_path / "de.wav", ss.speak(GERMAN, "de"))
    storage = storage_from_url(f"file://{tmp_path / 'store'}")
    blob = storage.put_file(wav)
    task = {"task_id": "t1", "kind": "transcribe",
            "analysis": {"source_key": blob.key, "start_seconds": 0.0, "end_seconds": 12.0, "language": "de"}}
    with pytest.raises(TaskFailure) as failure:
        run_transcribe_task(task, storage=storage, work_dir=tmp_path / "work", engines=english_only,
                            on_progress=lambda *_: None, cancel=threading.Event())  # fmt: skip
    assert not failure.value.retryable and "speech in 'de' cannot be transcribed here" in failure.value.reason


def test_a_transcribe_task_reports_its_engine_model_and_language(engines, tmp_path):
    spoken = ss.concatenate([(ss.speak(ss.PARAGRAPH[:200], "en-us+f3"), 0)], pause=0.5)
    wav = ss.write_wav(tmp_path / "en.wav", spoken.pcm)
    storage = storage_from_url(f"file://{tmp_path / 'store'}")
    blob = storage.put_file(wav)
    task = {"task_id": "t2", "kind": "transcribe",
            "analysis": {"source_key": blob.key, "start_seconds": 0.0, "end_seconds": spoken.duration}}
    result = run_transcribe_task(task, storage=storage, work_dir=tmp_path / "work", engines=engines,
                                 on_progress=lambda *_: None, cancel=threading.Event())  # fmt: skip
    assert (result["transcriber"], result["model"], result["language"]) == ("faster-whisper", "base", "en")
    assert result["language_probability"] > 0.5  # detected by the multilingual model
    starts = [start for _, start, _ in result["words"]]
    assert starts == sorted(starts) and 0.0 <= starts[0] and result["words"][-1][2] <= spoken.duration
    assert jiwer.wer(ss.normalise_text(ss.PARAGRAPH[:200]),
                     ss.normalise_text(" ".join(t for t, _, _ in result["words"]))) <= 0.25  # fmt: skip


def test_the_node_reports_its_engines_as_capabilities(engines):
    """What SpeechEngines found goes to the scheduler in RegisterNode (NodeCapabilities)."""
    from google.protobuf.json_format import MessageToDict, ParseDict

    from reelfarm.v1 import common_pb2
    from render_nodes.node import detect_capabilities

    capabilities = detect_capabilities(1, ["blazeface"], speech=engines.capabilities(), gpus=[])
    sent = MessageToDict(ParseDict(capabilities, common_pb2.NodeCapabilities()), preserving_proto_field_name=True)
    assert sent["transcribers"] == ["faster-whisper", "pocketsphinx"]
    assert sent["whisper_models"] == ["base", "tiny.en"]
    assert len(sent["transcription_languages"]) == len(WHISPER_LANGUAGES)


def test_whisper_runs_on_cuda_only_where_the_capabilities_say_so():
    from render_nodes.speech.transcribe import whisper_device

    assert whisper_device([]) == ("cpu", "int8")
    # A GPU listed but none CTranslate2 can open (as on this CPU machine): still the CPU.
    import ctranslate2

    expected = ("cuda", "float16") if ctranslate2.get_cuda_device_count() > 0 else ("cpu", "int8")
    assert whisper_device([{"name": "NVIDIA H100", "memory_bytes": 80 << 30}]) == expected
