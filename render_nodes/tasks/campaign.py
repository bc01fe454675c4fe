"""A campaign's node tasks (seeds/004; scheduler/campaigns.py plans them one after the other).

capture: the page at the spec's URL, through the SSRF rules (render_nodes/campaigns/capture.py):
    its screenshots go to storage, its text comes back as JSON.
script: the script in the page's language (analysis/campaigns/script.py), translated into each
    other language by the configured translator (analysis/campaigns/translate.py).
campaign_video: one language's voiceover (render_nodes/campaigns/voice.py, stage "voiceover")
    and video (render_nodes/campaigns/compose.py, stage "rendering"), stored.
A failure the page or the configuration causes (could not capture, no script, no translator,
no voice) is permanent and its reason becomes the campaign's; anything else is retried.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
import time
from pathlib import Path

from reelfarm.address_guard import AddressPolicy
from reelfarm.settings import Settings
from reelfarm.storage import Storage
from render_nodes.tasks.common import ProgressFn, TaskFailure, cancelled, media_failures


# The script's spoken length: with compose's 1.8 s title card and 2 s end card the video lasts
# 30-45 s (seeds/004's videos; issue 18).
SPOKEN_SECONDS = (26.5, 41.0)


def _work_dir(task: dict, work_dir: Path) -> Path:
    path = work_dir / "tasks" / task["task_id"]
    path.mkdir(parents=True, exist_ok=True)
    return path


def _stored(storage: Storage, path: Path, content_type: str) -> dict:
    blob = storage.put_file(path, move=True)
    return {"name": path.name, "sha256": blob.sha256, "size_bytes": blob.size_bytes, "storage_key": blob.key,
            "content_type": content_type}  # fmt: skip


def run_capture_task(task: dict, *, storage: Storage, work_dir: Path, on_progress: ProgressFn,
                     cancel: threading.Event, settings: Settings, **_unused) -> dict:  # fmt: skip
    from render_nodes.campaigns.capture import BrowserUnavailable, CaptureFailed, capture_page

    spec = task["campaign"]
    folder = _work_dir(task, work_dir)
    try:
        on_progress("collecting", 0.0)
        try:
            page = capture_page(spec["url"], folder, policy=AddressPolicy.from_settings(settings))
        except CaptureFailed as exc:
            raise TaskFailure(f"could not capture the page: {exc}", retryable=False) from None
        except BrowserUnavailable as exc:  # this node's fault, not the page's: another node may have one
            raise TaskFailure(f"no browser on this node: {exc}", retryable=True) from None
        if cancel.is_set():
            raise cancelled()
        on_progress("collecting", 80.0)
        screenshots = [_stored(storage, Path(p), "image/png")["storage_key"] for p in page.section_screenshots]
        full_page = _stored(storage, Path(page.full_page_screenshot), "image/png")["storage_key"]
        text = {k: v for k, v in dataclasses.asdict(page).items()
                if k not in ("section_screenshots", "full_page_screenshot")}  # fmt: skip
        on_progress("collecting", 100.0)
        return {"page": text, "screenshots": screenshots, "full_page": full_page}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_script_task(task: dict, *, on_progress: ProgressFn, settings: Settings, **_unused) -> dict:
    from analysis.campaigns.script import PageText, ScriptError, fit_to, write_script
    from analysis.campaigns.translate import (
        NoTranslatorError,
        TranslationError,
        require_translator,
        translate_script,
        translator_from_settings,
    )
    from analysis.llm import LlmClient, LlmConfig

    spec = task["campaign"]
    page = json.loads(spec.get("page_json") or "{}")
    text = PageText(title=page.get("title") or "", language=page.get("language") or "",
                    headings=tuple(page.get("headings") or ()), paragraphs=tuple(page.get("paragraphs") or ()),
                    calls_to_action=tuple(page.get("calls_to_action") or ()), main_text=page.get("main_text") or "",
                    domain=spec.get("domain") or "")  # fmt: skip
    llm = LlmClient.from_config(LlmConfig(base_url=settings.llm_base_url, api_key=settings.llm_api_key,
                                          model=settings.llm_model, timeout_seconds=settings.llm_timeout_seconds))  # fmt: skip
    on_progress("scripting", 0.0)
    try:
        script = write_script(text, llm=llm, target_seconds=SPOKEN_SECONDS)
    except ScriptError as exc:
        raise TaskFailure(f"no script could be written: {exc}", retryable=False) from None
    languages = list(spec.get("languages") or [script.language])
    try:
        translator = translator_from_settings(settings, llm=llm)
        require_translator(languages, script.language, translator)
    except (NoTranslatorError, ValueError) as exc:
        raise TaskFailure(str(exc), retryable=False) from None
    scripts = {}
    try:
        for done, language in enumerate(languages, start=1):
            try:
                # Without a translator require_translator has made sure every language is the page's.
                made = translate_script(script, language, translator) if translator else script
                scripts[language] = fit_to(made, SPOKEN_SECONDS[1]).to_dict()
            except TranslationError as exc:
                raise TaskFailure(f"translation to {language} failed: {exc}", retryable=True) from None
            on_progress("scripting", 100.0 * done / len(languages))
    finally:
        if translator is not None:
            translator.close()
        if llm is not None and hasattr(llm, "close"):
            llm.close()
    return {"page_language": script.language, "scripts": scripts}


def run_campaign_video_task(task: dict, *, storage: Storage, work_dir: Path, on_progress: ProgressFn,
                            cancel: threading.Event, encoders: list[str] | None = None, **_unused) -> dict:  # fmt: skip
    from analysis.campaigns.script import Script
    from render_nodes.campaigns.compose import compose_video
    from render_nodes.campaigns.voice import VoiceUnavailable, synthesize, within
    from render_nodes.tasks.render import choose_encoder

    spec = task["campaign"]
    language = spec["language"]
    script = Script.from_dict(json.loads(spec["script_json"]))
    folder = _work_dir(task, work_dir)
    try:
        on_progress("voiceover", 0.0)
        began = time.monotonic()
        try:
            voice = synthesize(script.lines, language, folder / f"voice_{language}.wav")
        except VoiceUnavailable as exc:
            raise TaskFailure(f"no voice for {language}: {exc}", retryable=False) from None
        # A voice can speak slower than the script's estimate (a translation most of all): past
        # the limit, body sentences are dropped from the end of the voiced track itself.
        voice = within(voice, SPOKEN_SECONDS[1], folder / f"voice_{language}_fitted.wav")
        if cancel.is_set():
            raise cancelled()
        voiced = time.monotonic()
        on_progress("rendering", 0.0)
        # In place on local storage; downloaded into the task's folder (removed below) from S3.
        screenshots = [storage.fetch_to_local(key, folder) for key in spec.get("screenshot_keys") or []]
        if not screenshots:
            raise TaskFailure("the capture kept no screenshots", retryable=False)
        encoder = choose_encoder(spec.get("encoder_preference") or "auto", list(encoders or []))
        with media_failures():
            video = compose_video(screenshots=screenshots, voice=voice, title=spec.get("title") or "",
                                  domain=spec.get("domain") or "", language=language, out_dir=folder,
                                  encoder=encoder, x264_preset=spec.get("x264_preset") or "veryfast",
                                  on_progress=lambda pct: on_progress("rendering", pct), cancel=cancel)  # fmt: skip
        rendered = time.monotonic()
        on_progress("uploading", 97.0)
        stored_video = _stored(storage, Path(video.video), "video/mp4")
        stored_poster = _stored(storage, Path(video.poster), "image/jpeg")
        return {"language": language, "engine": voice.engine, "duration_seconds": video.duration_seconds,
                "voice_seconds": round(voiced - began, 3), "render_seconds": round(rendered - voiced, 3),
                "width": video.width, "height": video.height, "video": stored_video, "poster": stored_poster}  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)
