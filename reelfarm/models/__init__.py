"""Every table model, registered on Base.metadata by importing this package.

Alembic's env.py and create_all import it; each service imports the models it uses.
"""

from reelfarm.models.accounts import Account, ApiKey, Invitation, Membership, User, UserSession
from reelfarm.models.batches import Batch, BatchItem, ItemTag, PlatformVariant
from reelfarm.models.billing import QuotaUsage
from reelfarm.models.campaigns import Campaign, CampaignVideo
from reelfarm.models.blobs import Asset, Blob, UploadUrl
from reelfarm.models.clips import Artifact, Clip
from reelfarm.models.jobs import Job
from reelfarm.models.nodes import NodeHeartbeat
from reelfarm.models.projects import Project
from reelfarm.models.styles import SourceStyle, StyleExtraction
from reelfarm.models.tasks import Task
from reelfarm.models.videos import Video
from reelfarm.models.webhooks import WebhookDelivery, WebhookEvent

__all__ = [
    "Account", "ApiKey", "Artifact", "Invitation", "Asset", "Batch", "BatchItem", "Blob", "Campaign", "CampaignVideo", "Clip", "ItemTag", "Job", "Membership",
    "NodeHeartbeat", "PlatformVariant", "Project", "QuotaUsage", "SourceStyle", "StyleExtraction", "Task", "UploadUrl",
    "User", "UserSession", "Video", "WebhookDelivery", "WebhookEvent",
]  # fmt: skip
