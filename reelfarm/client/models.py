"""Pydantic models of the API's answers, by wire shape.

Where the OpenAPI schema declares a response model (accounts: Me, KeyOut, CreatedKey,
MemberOut; POST /api/upload/url: UrlUploadAccepted) these match it field for field
(tests/reelfarm/test_client.py compares them with the schema's components). The other
routes answer untyped dicts in the schema: their models follow the route code and the API
documents, and the tests validate real answers against them strictly.

Attributes are snake_case; the wire names (camelCase on the reels and accounts families)
are the aliases, so `model_dump(by_alias=True)` gives the wire shape back. Models accept
fields they do not know (extra="allow": a newer server does not break an older client);
`validate_strict(Model, data)` refuses them, at every depth, to catch drift in tests.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationInfo, model_validator

from reelfarm.states import JOB_MACHINE

FORBID_EXTRA = "reelfarm_forbid_extra"


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    @model_validator(mode="after")
    def _known_fields_only(self, info: ValidationInfo):
        if info.context and info.context.get(FORBID_EXTRA) and self.model_extra:
            raise ValueError(f"{type(self).__name__}: fields the model does not know: {sorted(self.model_extra)}")
        return self


def validate_strict(model: Any, data: Any) -> Any:
    """`data` as `model` (a model class or a type such as list[KeyOut]), refusing unknown fields."""
    return TypeAdapter(model).validate_python(data, context={FORBID_EXTRA: True})


# --- accounts (schema-declared) -------------------------------------------------------------


class Me(ApiModel):
    user_id: str | None = Field(alias="userId")
    email: str | None
    account_id: str = Field(alias="accountId")
    account_name: str = Field(alias="accountName")
    plan: str
    role: str | None
    via: str


class KeyOut(ApiModel):
    id: str
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime = Field(alias="createdAt")
    revoked_at: datetime | None = Field(alias="revokedAt")
    last_used_at: datetime | None = Field(None, alias="lastUsedAt", description="to the minute; null: never used")


class CreatedKey(KeyOut):
    key: str = Field(description="the plaintext key: shown once")


class MemberOut(ApiModel):
    """A member (status "active"), or an invited address with no user yet (status "pending")."""

    user_id: str | None = Field(alias="userId", description="null for a pending invitation")
    email: str
    role: str
    status: str = "active"
    invitation_id: str | None = Field(None, alias="invitationId")


class InvitationOut(ApiModel):
    id: str
    email: str
    role: str
    created_at: datetime = Field(alias="createdAt")


# --- billing ---------------------------------------------------------------------------------


class Plan(ApiModel):
    id: str
    name: str
    videos_per_month: int | None
    languages_per_campaign: int
    api_rate_per_minute: int
    api_keys: int
    api_access: bool


class Plans(ApiModel):
    plans: list[Plan]
    default_plan: str


class Usage(ApiModel):
    plan: str
    month: str
    videos_per_month: int | None
    videos_used: int
    videos_left: int | None


# --- reels: uploads, jobs, clips --------------------------------------------------------------


class UploadResult(ApiModel):
    """POST /api/upload (and, with `status`, POST /api/upload/url)."""

    job_id: str = Field(alias="jobId")
    original_name: str = Field(alias="originalName")
    size_bytes: int | None = Field(alias="sizeBytes")
    ws_url: str = Field(alias="wsUrl")
    options: dict[str, Any]


class UrlUploadAccepted(UploadResult):
    size_bytes: int | None = Field(alias="sizeBytes", description="null until the download is done")
    status: str


class JobTask(ApiModel):
    kind: str
    index: int
    state: str
    stage: str | None
    progress_percent: float | None
    attempts: int
    error: str | None


class Job(ApiModel):
    """GET /api/jobs/{id} (with `tasks`) and an entry of GET /api/jobs (without)."""

    id: str
    job_id: str = Field(alias="jobId")
    original_name: str = Field(alias="originalName")
    status: str
    stage: str | None
    progress_percent: float
    error: str | None
    created_at: int = Field(alias="createdAt", description="unix ms")
    updated_at: int = Field(alias="updatedAt", description="unix ms")
    clip_count: int = Field(alias="clipCount")
    poster_url: str | None = Field(alias="posterUrl")
    options: dict[str, Any]
    tasks: list[JobTask] | None = None

    @property
    def finished(self) -> bool:
        return JOB_MACHINE.is_terminal(self.status)


class JobList(ApiModel):
    jobs: list[Job]


class ManifestFile(ApiModel):
    filename: str
    sha256: str
    size_bytes: int


class ClipQuality(ApiModel):
    detector: str | None
    encoder: str | None
    face_coverage: float | None
    crop_jitter: float | None
    captions: str
    shots: list[dict[str, Any]]


class ManifestClip(ApiModel):
    index: int
    start: float
    end: float
    duration: float
    score: float | None
    transcript: Any
    download_url: str = Field(alias="downloadUrl")
    poster_url: str = Field(alias="posterUrl")
    aspect_ratio: str = Field(alias="aspectRatio")
    width: int
    height: int
    encoder: str | None
    captions_url: str | None = Field(alias="captionsUrl")
    quality: ClipQuality
    metadata: dict[str, Any]
    style: dict[str, Any] | None
    files: list[ManifestFile]


class ManifestSource(ApiModel):
    sha256: str | None
    width: int | None
    height: int | None


class Manifest(ApiModel):
    """GET /api/clips/{job_id}: the generated clips and their files' SHA-256."""

    job_id: str = Field(alias="jobId")
    duration: float | None
    clip_count: int = Field(alias="clipCount")
    selection: Any
    selection_reason: str | None = Field(alias="selectionReason")
    language: str | None
    source: ManifestSource
    clips: list[ManifestClip]


# --- v1: videos, jobs, results, events ---------------------------------------------------------


class VideoMetadata(ApiModel):
    width: int | None
    height: int | None
    duration_seconds: float | None
    frame_rate: float | None
    codec: str | None
    bitrate_kbps: float | None
    format: str | None


class Video(ApiModel):
    """POST /api/v1/videos/upload."""

    video_id: str
    filename: str
    file_size_bytes: int
    metadata: VideoMetadata
    uploaded_at: str | None
    storage_url: str


class VideoStyle(ApiModel):
    """GET /api/v1/videos/{id}/style: `style_json` once extracted; `status` "extracting" (a 202) before."""

    video_id: str
    style_json: dict[str, Any] | None
    status: str | None = None


class JobV1(ApiModel):
    """The v1 job (GET /api/v1/jobs/{id}, create, cancel) and what jobs.wait returns."""

    job_id: str
    video_id: str | None
    status: str
    progress_percent: float
    current_stage: str | None
    error: str | None
    cancel_requested: bool
    created_at: str | None
    updated_at: str | None

    @property
    def finished(self) -> bool:
        return JOB_MACHINE.is_terminal(self.status)


class JobEvent(ApiModel):
    """A server-sent `job` event of GET /api/v1/jobs/{id}/events."""

    job_id: str
    status: str
    current_stage: str | None
    progress_percent: float
    error: str | None

    @property
    def finished(self) -> bool:
        return JOB_MACHINE.is_terminal(self.status)


class JobResult(ApiModel):
    """GET /api/v1/jobs/{id}/result (and the body of a job's webhook)."""

    job_id: str
    status: str
    progress_percent: float
    output_video_url: str | None
    processing_time_seconds: float | None
    clips: list[ManifestClip]
    style_json: dict[str, Any] | None
    applied_style_json: dict[str, Any] | None = None
    error: str | None = None


# --- v1 ingest: blobs, batches, assets ---------------------------------------------------------


class UploadUrl(ApiModel):
    """One answer of POST /api/v1/blobs/upload_urls: `exists`, or where to PUT the bytes."""

    sha256: str
    asset_id: str
    status: str
    upload_url: str | None
    upload_method: str | None = None
    upload_headers: dict[str, str] | None = None
    expires_at: str | None = None


class UploadUrls(ApiModel):
    blobs: list[UploadUrl]


class Blob(ApiModel):
    """A verified blob of the account (GET /api/v1/blobs/{sha256} adds the signed URLs)."""

    asset_id: str
    sha256: str
    size_bytes: int
    kind: str | None
    format: str | None
    content_type: str
    metadata: dict[str, Any] | None
    created_at: str
    download_url: str | None = None
    preview_url: str | None = None


class UploadedBlob(Blob):
    """blobs.upload's answer: the blob, and whether its bytes had to be sent (False: the server had them)."""

    uploaded: bool = False


class BlobList(ApiModel):
    blobs: list[Blob]


class BlobRef(ApiModel):
    """A blob a platform asset references: the full view, or only its hash."""

    sha256: str
    asset_id: str | None = None
    size_bytes: int | None = None
    kind: str | None = None
    format: str | None = None
    content_type: str | None = None
    metadata: dict[str, Any] | None = None
    created_at: str | None = None
    download_url: str | None = None
    preview_url: str | None = None


class PlatformAsset(ApiModel):
    platform: str
    caption: str | None
    hook: str | None
    video: BlobRef | None = None
    image: BlobRef | None = None
    audio: BlobRef | None = None


class Item(ApiModel):
    item_id: str
    item_ref: str
    batch_id: str
    batch_ref: str
    status: str
    category: str | None
    tags: list[str] | None
    usage_rights: dict[str, Any] | None
    platform_assets: list[PlatformAsset]


class ItemList(ApiModel):
    items: list[Item]


class Batch(ApiModel):
    batch_id: str
    batch_ref: str
    status: str
    review_reason: str | None
    reviewed_by: str | None
    reviewed_at: str | None
    distributed_at: str | None
    created_at: str | None
    manifest_sha256: str
    item_count: int
    items: list[Item] | None = None


class BatchList(ApiModel):
    batches: list[Batch]


# --- campaigns (004: top-level fields, no `data` envelope) -------------------------------------


class CampaignVideo(ApiModel):
    id: str
    language: str
    platform: str | None
    status: str
    file_url: str
    poster_url: str | None
    duration_seconds: float | None
    voice: str | None
    published_at: str | None


class Campaign(ApiModel):
    success: bool = True
    campaign_id: str
    job_id: str | None
    status: str
    url: str
    title: str | None
    languages: list[str]
    page_language: str | None
    created_at: str | None
    published_at: str | None
    error: str | None
    videos: list[CampaignVideo]


class CampaignCreated(ApiModel):
    success: bool
    campaign_id: str
    job_id: str | None
    status: str
    languages: list[str]
    title: str | None


class CampaignCancelled(ApiModel):
    success: bool
    campaign_id: str
    status: str
    cancel_requested: bool


class CampaignList(ApiModel):
    success: bool
    campaigns: list[Campaign]


# --- webhooks ----------------------------------------------------------------------------------


class WebhookSecret(ApiModel):
    secret: str


class Delivery(ApiModel):
    id: str
    event_id: str
    event: str
    subject_id: str | None
    url: str
    attempt: int
    status_code: int | None
    duration_ms: int | None
    error: str | None
    created_at: str
    event_status: str


class Deliveries(ApiModel):
    deliveries: list[Delivery]
    limit: int
    offset: int


class ReplayedEvent(ApiModel):
    event_id: str
    event: str
    status: str


# --- the dev API (002) ---------------------------------------------------------------------------


class Project(ApiModel):
    id: str
    name: str
    slug: str
    account_id: str = Field(alias="accountId")
    created_at: str = Field(alias="createdAt")


class ProjectCreated(ApiModel):
    project: Project


class DevVideo(ApiModel):
    id: str
    title: str
    status: str
    project_id: str
    duration_seconds: float | None


class DevVideoUploaded(ApiModel):
    video: DevVideo


class DevSubmitted(ApiModel):
    call_id: str = Field(alias="callId")


class DevClip(ApiModel):
    id: str
    title: str
    start_seconds: float
    end_seconds: float
    aspect_ratio: str | None
    status: str
    preview_url: str


class DevResult(ApiModel):
    """GET /api/dev/process-video-result: `running` with progress (a 202), then the clips."""

    call_id: str = Field(alias="callId")
    status: str
    progress_percent: float | None = None
    error: str | None = None
    video_id: str | None = Field(None, alias="videoId")
    clips: list[DevClip] | None = None


class DevClips(ApiModel):
    clips: list[DevClip]


class DevSummaryVideo(ApiModel):
    id: str
    title: str
    status: str


class DevCounts(ApiModel):
    total: int
    ready: int
    draft: int
    failed: int


class DevSummary(ApiModel):
    video: DevSummaryVideo
    counts: DevCounts


# --- health --------------------------------------------------------------------------------------


class Health(ApiModel):
    status: str


class ReadinessCheck(ApiModel):
    ok: bool
    error: str | None = None


class Readiness(ApiModel):
    """GET /readyz: `status` "ready" (200) or "not_ready" (503, returned, not raised)."""

    status: str
    checks: dict[str, ReadinessCheck]
