"""/api/v1/campaigns (seeds/004): create, read, list, approve, cancel, and the videos' files.

Answers in 004's shape: `{success: true, campaign_id, ...}` at the top level; errors
`{success: false, error}`. Creating needs the `campaigns:create` scope and a plan with API
access; the /api/v1 rate limits (control_plane/limits/middleware.py) apply as to every route.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from control_plane.campaigns import service
from control_plane.clips.views import stored_response
from control_plane.deps import CampaignsAccount, SessionDep, SettingsDep, StorageDep
from control_plane.errors import ApiError

router = APIRouter(prefix="/api/v1/campaigns", tags=["campaigns"])


async def _json_body(request: Request) -> dict:
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "body: must be a JSON object") from None
    if not isinstance(body, dict):
        raise ApiError(400, "body: must be a JSON object")
    return body


@router.post("", summary="Create a campaign from a web page: it is captured, scripted, voiced and rendered")
async def create_campaign(request: Request, account: CampaignsAccount, session: SessionDep, settings: SettingsDep):
    body = await _json_body(request)
    # The pre-flight fetch and the database work block: off the event loop.
    campaign = await run_in_threadpool(service.create_campaign, session=session, account=account, body=body,
                                       settings=settings, plans=request.app.state.plans)  # fmt: skip
    return {"success": True, "campaign_id": campaign.id, "job_id": campaign.job_id, "status": campaign.status,
            "languages": list(campaign.languages), "title": campaign.title}  # fmt: skip


@router.get("", summary="The account's campaigns, newest first")
def list_campaigns(request: Request, account: CampaignsAccount, session: SessionDep, settings: SettingsDep):
    base = settings.public_url or str(request.base_url)
    return {"success": True, "campaigns": [service.campaign_document(session=session, campaign=c, base_url=base)
                                           for c in service.list_campaigns(session=session, account=account)]}  # fmt: skip


@router.get("/{campaign_id}", summary="A campaign's status and finished videos")
def get_campaign(campaign_id: str, request: Request, account: CampaignsAccount, session: SessionDep,
                 settings: SettingsDep):  # fmt: skip
    campaign = service.get_campaign(session=session, account=account, campaign_id=campaign_id)
    base = settings.public_url or str(request.base_url)
    return {"success": True, **service.campaign_document(session=session, campaign=campaign, base_url=base)}


@router.post("/{campaign_id}/approve", summary="Approve a campaign in review: it becomes published")
def approve_campaign(campaign_id: str, request: Request, account: CampaignsAccount, session: SessionDep,
                     settings: SettingsDep):  # fmt: skip
    campaign = service.approve(session=session, account=account, campaign_id=campaign_id)
    base = settings.public_url or str(request.base_url)
    return {"success": True, **service.campaign_document(session=session, campaign=campaign, base_url=base)}


@router.post("/{campaign_id}/cancel", summary="Stop a campaign that is still being made (it ends failed)")
def cancel_campaign(campaign_id: str, account: CampaignsAccount, session: SessionDep):
    campaign = service.cancel(session=session, account=account, campaign_id=campaign_id)
    return {"success": True, "campaign_id": campaign.id, "status": campaign.status, "cancel_requested": True}


@router.get("/{campaign_id}/videos/{video_id}/file", summary="A campaign video's MP4")
def video_file(campaign_id: str, video_id: str, request: Request, account: CampaignsAccount, session: SessionDep,
               storage: StorageDep):  # fmt: skip
    video = service.video_of(session=session, account=account, campaign_id=campaign_id, video_id=video_id)
    return stored_response(request, storage, sha256=video.sha256 or video.storage_key, key=video.storage_key,
                           size_bytes=video.size_bytes, content_type="video/mp4")  # fmt: skip


@router.get("/{campaign_id}/videos/{video_id}/poster", summary="A campaign video's poster (JPEG)")
def video_poster(campaign_id: str, video_id: str, request: Request, account: CampaignsAccount, session: SessionDep,
                 storage: StorageDep):  # fmt: skip
    video = service.video_of(session=session, account=account, campaign_id=campaign_id, video_id=video_id)
    if not video.poster_key:
        raise ApiError(404, "no poster")
    return stored_response(request, storage, sha256=video.poster_key, key=video.poster_key,
                           size_bytes=storage.size(video.poster_key),
                           content_type="image/jpeg")  # fmt: skip
