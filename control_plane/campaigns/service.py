"""Campaigns (seeds/004): a web page made into voiced vertical videos, one per language.

`create_campaign` checks the request (URL, languages against the plan, the voices and the
translator, the webhook URL), runs a bounded pre-flight fetch of the page (a page that cannot
be captured is a 422 before anything is made), charges one video per language, and records a
job (api "campaign") whose tasks the scheduler plans (scheduler/campaigns.py). The campaign's
document (`campaign_document`) is GET's answer and the webhooks' body.
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from control_plane.billing import quotas
from control_plane.billing.plans import PlanBook
from control_plane.errors import ApiError
from control_plane.jobs.service import render_settings
from control_plane.webhooks.service import check_webhook_url
from reelfarm import page_preflight
from reelfarm.address_guard import AddressPolicy, FetchRefused, check_url_syntax
from reelfarm.campaigns import CAMPAIGN_API, DEFAULT_LANGUAGES, VOICE_ENGINES, domain_of
from reelfarm.database import iso_z, utcnow
from reelfarm.models.accounts import Account
from reelfarm.models.campaigns import Campaign, CampaignVideo
from reelfarm.models.jobs import Job
from reelfarm.settings import Settings
from reelfarm.states import CAMPAIGN_MACHINE, CampaignStatus, JobStatus, transition

CANNOT_CAPTURE = "Could not capture the page: {}"
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")


def normalise_url(url: object) -> str:
    """The page's URL, https assumed without a scheme; 400 `url: ...` when it is not one."""
    if not isinstance(url, str) or not url.strip():
        raise ApiError(400, "url: required")
    try:
        return str(check_url_syntax(page_preflight.normalise_url(url)))
    except (FetchRefused, ValueError) as exc:
        raise ApiError(400, f"url: {exc}") from None


def translation_available(settings: Settings) -> bool:
    """Whether a translator is configured (analysis/campaigns/translate.py): LibreTranslate or the LLM."""
    if settings.translator == "none":
        return False
    if settings.translator == "libretranslate":
        return bool(settings.translate_url)
    if settings.translator == "llm":
        return bool(settings.llm_base_url)
    return bool(settings.translate_url or settings.llm_base_url)


def preflight(url: str, *, settings: Settings) -> page_preflight.PageLook:
    """A bounded look at the page before the campaign is made (reelfarm/page_preflight.py, the
    capture's own rules): 400 for a refused URL, 422 when the page cannot be captured (no
    answer, HTTP >= 400, a sign-in form), as the capture task would find."""
    seen = page_preflight.look(url, AddressPolicy.from_settings(settings))
    if seen.problem is not None:
        raise ApiError(400 if seen.refused else 422, (f"url: {seen.problem}" if seen.refused
                                                      else CANNOT_CAPTURE.format(seen.problem)))  # fmt: skip
    return seen


def check_languages(requested: object, *, page_language: str | None, account: Account, plans: PlanBook,
                    settings: Settings) -> list[str]:  # fmt: skip
    """The languages to voice, or 400 naming what is wrong (plan cap, no voice, no translator)."""
    can_translate = translation_available(settings)
    if requested is None:
        # 004's default where a translator can make it; without one, the page's own language
        # (the response's `languages` says which were used).
        requested = list(DEFAULT_LANGUAGES) if can_translate else [page_language or "en"]
    if not isinstance(requested, list) or not requested or not all(isinstance(x, str) for x in requested):
        raise ApiError(400, "languages: a non-empty list of language codes, e.g. [\"en\", \"ja\"]")
    languages = list(dict.fromkeys(x.strip().lower() for x in requested))
    for language in languages:
        if not _LANGUAGE.match(language):
            raise ApiError(400, f"languages: {language!r} is not an ISO 639-1 language code")
    cap = plans.of(account.plan).languages_per_campaign
    if len(languages) > cap:
        raise ApiError(400, f"languages: {len(languages)} requested, your plan allows up to {cap} per campaign")
    unvoiced = [x for x in languages if x not in VOICE_ENGINES]
    if unvoiced:
        raise ApiError(400, f"languages: this installation cannot voice {', '.join(unvoiced)} "
                            f"(it voices {', '.join(sorted(VOICE_ENGINES))})")  # fmt: skip
    foreign = [x for x in languages if x != page_language]
    if foreign and not can_translate:
        own = f"the page's own language ({page_language})" if page_language else "the page's own language"
        raise ApiError(400, f"languages: {', '.join(foreign)} need a translator, and none is configured "
                            f"(REELFARM_TRANSLATE_URL or REELFARM_LLM_BASE_URL); only {own} can be voiced")  # fmt: skip
    return languages


def create_campaign(*, session: Session, account: Account, body: dict, settings: Settings,
                    plans: PlanBook) -> Campaign:  # fmt: skip
    url = normalise_url(body.get("url"))
    webhook_url = body.get("webhook_url")
    if webhook_url is not None:
        if not isinstance(webhook_url, str):
            raise ApiError(400, "webhook_url: must be a string")
        webhook_url = check_webhook_url(webhook_url, settings=settings)
    title = body.get("title")
    if title is not None and (not isinstance(title, str) or len(title) > 500):
        raise ApiError(400, "title: a string of at most 500 characters")
    page = preflight(url, settings=settings)
    languages = check_languages(body.get("languages"), page_language=page.language, account=account, plans=plans,
                                settings=settings)  # fmt: skip
    title = (title or "").strip() or domain_of(url)
    charge = quotas.charge_videos(session=session, account=account, videos=len(languages), plans=plans)
    job = Job(account_id=account.id, video_id=None, source_url=url, original_name=title, api=CAMPAIGN_API,
              render_settings=render_settings(settings), quota_month=charge.month, quota_videos=charge.videos)  # fmt: skip
    session.add(job)
    session.flush()
    campaign = Campaign(account_id=account.id, job_id=job.id, url=url, title=title, languages=languages,
                        page_language=page.language, webhook_url=webhook_url)  # fmt: skip
    session.add(campaign)
    session.commit()
    return campaign


def get_campaign(*, session: Session, account: Account, campaign_id: str) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or campaign.account_id != account.id:
        raise ApiError(404, "campaign not found")
    return campaign


def list_campaigns(*, session: Session, account: Account, limit: int = 100) -> list[Campaign]:
    return list(session.scalars(select(Campaign).where(Campaign.account_id == account.id)
                                .order_by(Campaign.created_at.desc()).limit(limit)))  # fmt: skip


def videos_of(session: Session, campaign: Campaign) -> list[CampaignVideo]:
    return list(session.scalars(select(CampaignVideo).where(CampaignVideo.campaign_id == campaign.id)
                                .order_by(CampaignVideo.created_at, CampaignVideo.language,
                                          CampaignVideo.platform)))  # fmt: skip


def approve(*, session: Session, account: Account, campaign_id: str) -> Campaign:
    """review -> published (publishing to the networks themselves is a plug-in point)."""
    campaign = get_campaign(session=session, account=account, campaign_id=campaign_id)
    if campaign.status == CampaignStatus.published:
        return campaign
    if campaign.status != CampaignStatus.review:
        raise ApiError(409, f"campaign is {campaign.status}: only a campaign in review can be approved")
    now = utcnow()
    transition(CAMPAIGN_MACHINE, campaign, CampaignStatus.published)
    campaign.published_at = now
    for video in videos_of(session, campaign):
        video.published_at = now
        video.status = "published"
    session.commit()
    return campaign


def cancel(*, session: Session, account: Account, campaign_id: str) -> Campaign:
    """Stop a working campaign (the scheduler cancels its job; it then ends `failed`, "cancelled")."""
    campaign = get_campaign(session=session, account=account, campaign_id=campaign_id)
    if CAMPAIGN_MACHINE.is_terminal(campaign.status) or campaign.status == CampaignStatus.review:
        raise ApiError(409, f"campaign is already {campaign.status}")
    job = session.get(Job, campaign.job_id)
    if job is not None and job.cancel_requested_at is None and job.status not in (JobStatus.completed,
                                                                                 JobStatus.failed):  # fmt: skip
        job.cancel_requested_at = utcnow()
        session.commit()
    return campaign


def campaign_document(*, session: Session, campaign: Campaign, base_url: str) -> dict:
    """GET /api/v1/campaigns/{id}'s fields (and the webhooks' `videos`)."""
    base = base_url.rstrip("/")
    return {
        "campaign_id": campaign.id,
        "job_id": campaign.job_id,
        "status": campaign.status,
        "url": campaign.url,
        "title": campaign.title,
        "languages": list(campaign.languages),
        "page_language": campaign.page_language,
        "created_at": _iso(campaign.created_at),
        "published_at": _iso(campaign.published_at),
        "error": campaign.error,
        "videos": [
            {"id": v.id, "language": v.language, "platform": v.platform, "status": v.status,
             "file_url": f"{base}/api/v1/campaigns/{campaign.id}/videos/{v.id}/file",
             "poster_url": f"{base}/api/v1/campaigns/{campaign.id}/videos/{v.id}/poster" if v.poster_key else None,
             "duration_seconds": round(v.duration_seconds, 2), "voice": v.engine, "published_at": _iso(v.published_at)}
            for v in videos_of(session, campaign)
        ],  # fmt: skip
    }


def video_of(*, session: Session, account: Account, campaign_id: str, video_id: str) -> CampaignVideo:
    campaign = get_campaign(session=session, account=account, campaign_id=campaign_id)
    video = session.get(CampaignVideo, video_id)
    if video is None or video.campaign_id != campaign.id:
        raise ApiError(404, "video not found")
    return video


def _iso(moment) -> str | None:
    return iso_z(moment) if moment is not None else None  # 004's "2026-06-11T09:30:00Z", as its webhooks
