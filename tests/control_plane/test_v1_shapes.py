"""v1 wire values that must match 003: stage names and order, and the container's short name."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from control_plane.jobs import shapes
from control_plane.videos.service import container_format
from reelfarm.states import CAMPAIGN_JOB_STAGES, JobStage

DOCUMENTED_STAGES = ("video_analysis", "audio_analysis", "motion_analysis", "style_extraction", "style_application",
                     "rendering")  # 003, in its order


def _snapshot(stage: str | None, status: str = "processing") -> shapes.JobSnapshot:
    now = datetime.now(UTC)
    return shapes.JobSnapshot(id="job_1", original_name="a.mp4", video_id="vid_1", status=status, stage=stage,
                              progress_percent=10.0, error=None, cancel_requested=False, created_at=now,
                              updated_at=now, options={})  # fmt: skip


def test_every_stage_has_a_documented_name_in_the_documented_order():
    assert shapes.V1_STAGES == DOCUMENTED_STAGES
    video_stages = [stage for stage in JobStage if stage not in CAMPAIGN_JOB_STAGES]  # a campaign is no v1 job
    names = [shapes.v1_job(_snapshot(stage))["current_stage"] for stage in video_stages]  # in JobStage's order
    assert all(name in DOCUMENTED_STAGES for name in names), names
    positions = [DOCUMENTED_STAGES.index(name) for name in names]
    assert positions == sorted(positions)  # a v1 client never sees the stage go back
    # Two of ours share one name: picking the moments and extracting the Style DNA are both 003's
    # style_extraction; every other stage has its own.
    shared = {stage for stage in video_stages if shapes.v1_stage(stage) == "style_extraction"}
    assert shared == {JobStage.selecting, JobStage.styling}
    assert len(set(positions)) == len(positions) - 1
    assert shapes.v1_event(_snapshot(JobStage.transcribing))["current_stage"] == "audio_analysis"
    assert shapes.v1_job(_snapshot(JobStage.rendering))["current_stage"] == "rendering"
    # No stage (queued before any work, finished, cancelled): null, as 003's new job shows.
    assert shapes.v1_job(_snapshot(None, "queued"))["current_stage"] is None
    assert shapes.v1_event(_snapshot(None, "cancelled"))["current_stage"] is None


ISO_FAMILY = "mov,mp4,m4a,3gp,3g2,mj2"


@pytest.mark.parametrize(("format_name", "filename", "brand", "expected"), [
    (ISO_FAMILY, "talk.mp4", "isom", "mp4"),
    (ISO_FAMILY, "talk.bin", "mp42", "mp4"),   # the brand wins over a meaningless extension
    (ISO_FAMILY, "talk.mp4", "qt  ", "mov"),   # a QuickTime file misnamed .mp4 is a mov
    (ISO_FAMILY, "clip.3gp", "3gp4", "3gp"),
    (ISO_FAMILY, "song.m4a", "M4A ", "m4a"),
    (ISO_FAMILY, "phone.MOV", None, "mov"),    # no ftyp brand: the extension
    (ISO_FAMILY, "video", None, "mov"),        # nothing to go on: the demuxer's first name
    ("matroska,webm", "a.webm", None, "webm"),
    ("matroska,webm", "a.mkv", None, "matroska"),
    ("avi", "a.avi", None, "avi"),
    ("", "a.mp4", None, None),
])  # fmt: skip
def test_container_format_is_one_short_name(format_name, filename, brand, expected):
    assert container_format(format_name, filename, brand) == expected
