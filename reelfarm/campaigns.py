"""A campaign's lifecycle (seeds/004), shared by the API and the scheduler.

A campaign's work is one job (api "campaign") whose tasks are: capture (the page), script
(every language's), then a campaign_video per language (voice and video). The scheduler moves
the campaign's status from its tasks as they go (`advance`); the job's end decides the
campaign's (`job_finished`, called by reelfarm/job_lifecycle.finish_job): completed -> review,
failed or cancelled -> failed with the reason. Either way one webhook, `campaign.completed` or
`campaign.failed`, goes through the outbox, rendered by the API in GET's shape.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from reelfarm import outbox
from reelfarm.models.campaigns import Campaign
from reelfarm.models.jobs import Job
from reelfarm.states import CAMPAIGN_MACHINE, CampaignStatus, JobStatus, transition

log = logging.getLogger(__name__)

CAMPAIGN_API = "campaign"
# Where each video is listed; they share the file (the same 1080x1920 H.264 suits all three).
PLATFORMS = ("youtube_shorts", "tiktok", "instagram_reels")
DEFAULT_LANGUAGES = ("en", "ja", "ko")  # seeds/004's default, when the page's can be translated to them

# Which engine voices each language (render_nodes/campaigns/voice.py; installed by .ci/setup):
# Piper for English, Kokoro for Japanese, espeak-ng for the rest. The API refuses others.
VOICE_ENGINES = {"en": "piper", "ja": "kokoro", **{language: "espeak-ng" for language in (
    "ko", "zh", "es", "de", "fr", "pt", "it", "nl", "pl", "sv", "tr", "id", "vi")}}  # fmt: skip


def domain_of(url: str) -> str:
    """The page's domain as a campaign shows it (its default title, its end card): no "www."."""
    return (urlsplit(url).hostname or url).removeprefix("www.")


def campaign_of_job(session: Session, job_id: str) -> Campaign | None:
    return session.scalars(select(Campaign).where(Campaign.job_id == job_id)).first()


def advance(campaign: Campaign, status: CampaignStatus) -> bool:
    """Move a working campaign forward (never back: a retried task does not re-open a stage)."""
    if campaign.status == status or CAMPAIGN_MACHINE.is_terminal(campaign.status):
        return False
    if str(status) not in CAMPAIGN_MACHINE.edges.get(campaign.status, frozenset()):
        return False
    return transition(CAMPAIGN_MACHINE, campaign, status)


def job_finished(session: Session, job: Job) -> None:
    """The campaign's end, from its job's: called inside the transaction that finished the job."""
    campaign = campaign_of_job(session, job.id)
    if campaign is None:
        return
    if job.status == JobStatus.completed:
        changed = transition(CAMPAIGN_MACHINE, campaign, CampaignStatus.review)
        event = "campaign.completed"
    else:
        reason = job.error or ("cancelled" if job.status == JobStatus.cancelled else "failed")
        changed = transition(CAMPAIGN_MACHINE, campaign, CampaignStatus.failed)
        if changed:
            campaign.error = reason
        event = "campaign.failed"
    log.info("campaign %s %s%s", campaign.id, campaign.status, f": {campaign.error}" if campaign.error else "")
    if changed and campaign.webhook_url:
        # No body: the API's delivery worker renders it as GET /api/v1/campaigns/{id} shows it.
        outbox.record_event(session, account_id=campaign.account_id, event=event, subject_id=campaign.id,
                            url=campaign.webhook_url)  # fmt: skip
