"""Finding the moments, through the whole backbone, on a spoken "podcast" made with espeak-ng.

API -> scheduler -> transcribe/analyze tasks on a Ray node (pocketsphinx, voice activity,
speaker features, keyframe faces) -> selection in the scheduler -> render tasks.
"""

from __future__ import annotations

import pytest

from harness.media import make_spoken_video
from harness.polling import wait_until
from reelfarm.client import TERMINAL, ReelFarmClient

HOST, GUEST = 0, 1
COFFEE = 2  # the turn index of the guest's passage about coffee
SCRIPT = [
    (HOST, "welcome back to the show everyone, today my guest is a mountain guide"),
    (GUEST, "thanks for having me, it is great to be here with you"),
    (HOST, "what about coffee, do you drink coffee on the mountain"),
    (GUEST, "coffee is everything to me. I brew coffee every morning at the camp. the coffee beans come from a "
            "small farm, and good hot coffee keeps the whole team happy"),
    (HOST, "how did you start climbing"),
    (GUEST, "I started climbing when I was twelve years old, with my father, in the mountains near our village"),
    (HOST, "what is the hardest part of the job"),
    (GUEST, "the weather changes very fast, and storms can arrive in minutes, so we always watch the sky and "
            "the clouds"),
    (HOST, "what advice would you give to beginners"),
    (GUEST, "train your legs, walk every day, carry a heavy bag, and learn to read a map before you buy "
            "expensive gear"),
]
STAGE_ORDER = ["transcribing", "analyzing", "selecting", "rendering"]


@pytest.fixture(scope="module")
def podcast(tmp_path_factory):
    path = tmp_path_factory.mktemp("podcast") / "podcast.mp4"
    turns = make_spoken_video(path, SCRIPT)
    return path, turns


def _wait_recording_stages(client: ReelFarmClient, job_id: str, timeout: float = 240) -> tuple[dict, list[str]]:
    stages: list[str] = []

    def finished() -> dict | None:
        job = client.job(job_id)
        if job["stage"] and (not stages or stages[-1] != job["stage"]):
            stages.append(job["stage"])
        return job if job["status"] in TERMINAL else None

    job = wait_until(finished, timeout=timeout, what=f"job {job_id} to finish", describe=lambda: client.job(job_id))
    return job, stages


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def test_a_prompt_picks_the_passage_about_its_topic(client: ReelFarmClient, podcast):
    path, turns = podcast
    created = client.upload(path, {"numClips": 2, "clipLength": "short", "prompt": "moments about coffee",
                                   "genre": "podcast"})  # fmt: skip
    job, stages = _wait_recording_stages(client, created["jobId"])
    assert job["status"] == "completed", (job["error"], job.get("tasks"))
    # Stages are reported in the documented order (a fast one may pass between two polls).
    assert "transcribing" in stages and stages[-1] == "rendering", stages
    assert stages == sorted(stages, key=STAGE_ORDER.index), stages
    kinds = [t["kind"] for t in job["tasks"]]
    assert kinds.count("transcribe") >= 1 and kinds.count("analyze") == 1 and kinds.count("render") == 2, kinds

    manifest = client.manifest(created["jobId"])
    assert manifest["selection"] == "moments"
    best = manifest["clips"][0]
    question, answer = turns[COFFEE], turns[COFFEE + 1]
    assert _overlap((best["start"], best["end"]), (question.start, answer.end)) > 0, (best, question, answer)
    assert 3.0 <= best["duration"] <= 15.0
    assert 0.0 <= best["score"] <= 10.0
    assert best["transcript"], best
    metadata = best["metadata"]
    assert {"title", "viral_hook", "key_insight", "dominant_emotion", "hashtags", "viral_score"} <= set(metadata)
    assert metadata["viral_score"] == best["score"]


# The first test covers both databases; these two add nothing database-specific.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_without_a_prompt_clips_respect_lengths_and_do_not_overlap(client: ReelFarmClient, podcast):
    path, _ = podcast
    created = client.upload(path, {"numClips": 3, "clipLength": "short", "autoHook": False})
    job = client.wait(created["jobId"], timeout=240)
    assert job["status"] == "completed", (job["error"], job.get("tasks"))
    clips = client.manifest(created["jobId"])["clips"]
    assert len(clips) == 3
    spans = sorted((c["start"], c["end"]) for c in clips)
    for earlier, later in zip(spans, spans[1:]):
        assert earlier[1] <= later[0] + 1e-6, spans
    for clip in clips:
        assert 3.0 <= clip["end"] - clip["start"] <= 15.0 + 1e-6, clip
        assert "title" not in clip["metadata"] and "viral_hook" not in clip["metadata"]  # autoHook false
    scores = [c["score"] for c in clips]
    assert scores == sorted(scores, reverse=True)  # clip 1 is the best moment


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_remove_ai_voice_splices_the_interviewers_turns_out(client: ReelFarmClient, podcast, tmp_path):
    path, turns = podcast
    created = client.upload(path, {"numClips": 1, "clipLength": "long", "genre": "interview",
                                   "removeAiVoice": True})  # fmt: skip
    job = client.wait(created["jobId"], timeout=240)
    assert job["status"] == "completed", (job["error"], job.get("tasks"))
    manifest = client.download_all(created["jobId"], tmp_path / "out")
    clip = manifest["clips"][0]
    span = (clip["start"], clip["end"])
    host_inside = sum(_overlap(span, (t.start, t.end)) for t in turns if t.speaker == HOST)
    assert host_inside > 3.0, (span, turns)  # the clip's range does include questions
    # By duration: what was cut is about the host's speech inside the range.
    from conftest import ffprobe_json

    rendered = float(ffprobe_json(tmp_path / "out" / "clip_01.mp4")["format"]["duration"])
    removed = (span[1] - span[0]) - rendered
    assert removed == pytest.approx(host_inside, abs=2.5), (removed, host_inside)
    assert clip["duration"] == pytest.approx(rendered, abs=0.2)
    # By content: the host's distinctive words are gone, the guest's are there.
    words = set(clip["transcript"].split())
    host_only = {"welcome", "show", "advice", "beginners", "hardest"}
    assert not (words & host_only), clip["transcript"]
    assert words, clip


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_source_without_speech_says_so_and_gets_no_captions(client: ReelFarmClient, sample_video):
    """The sample video is a test pattern and a 440 Hz tone: voice activity calls the tone
    speech, the transcriber must not read words into it, and the job says why its clips
    were spread evenly rather than picked."""
    created = client.upload(sample_video, {"numClips": 2, "clipLength": "short", "captionPreset": "karaoke"})
    job = client.wait(created["jobId"], timeout=240)
    assert job["status"] == "completed", (job["error"], job.get("tasks"))
    manifest = client.manifest(created["jobId"])
    assert manifest["selection"] == "uniform" and manifest["selectionReason"] == "no speech found"
    assert manifest["clips"]
    for clip in manifest["clips"]:
        assert clip["captionsUrl"] is None and clip["quality"]["captions"] == "none", clip
        assert clip["transcript"] == ""
