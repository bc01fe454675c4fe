"""Batch manifests: atomic, idempotent per batch_ref, reviewed and distributed as a unit."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from control_plane.accounts.service import owned
from control_plane.blobs import service as blobs
from control_plane.errors import ApiError
from reelfarm.database import utcnow
from reelfarm.models.accounts import Account
from reelfarm.models.batches import Batch, BatchItem, ItemTag, PlatformVariant
from reelfarm.states import InvalidTransition, StateMachine, decide
from reelfarm.storage import Storage

BLOB_FIELDS = ("video_sha256", "image_sha256", "audio_sha256")
VISIBLE_TO_AGENTS = ("approved", "distributed")
# Pages past this are refused (4xx) rather than handed to the database (SQLite integers are 64-bit).
MAX_OFFSET = 1_000_000

# The same rules as jobs and tasks (reelfarm/states.py): idempotent, terminal is final.
BATCH_MACHINE = StateMachine(
    name="batch",
    edges={
        "pending_review": frozenset({"approved", "rejected"}),
        "approved": frozenset({"distributed"}),
        "rejected": frozenset(),
        "distributed": frozenset(),
    },
    terminal=frozenset({"rejected", "distributed"}),
)


class PlatformVariantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    platform: str = Field(min_length=1, max_length=50)
    video_sha256: str | None = Field(None, min_length=64, max_length=64)
    image_sha256: str | None = Field(None, min_length=64, max_length=64)
    audio_sha256: str | None = Field(None, min_length=64, max_length=64)
    caption: str | None = Field(None, max_length=5000)
    hook: str | None = Field(None, max_length=2000)

    @field_validator(*BLOB_FIELDS)
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.lower() if value else value

    @model_validator(mode="after")
    def _needs_a_blob(self):
        if not any(getattr(self, f) for f in BLOB_FIELDS):
            raise ValueError("a platform asset needs video_sha256, image_sha256 or audio_sha256")
        return self


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_ref: str = Field(min_length=1, max_length=200)
    category: str | None = Field(None, max_length=100)
    tags: list[str] = Field(default_factory=list, max_length=50)
    usage_rights: dict | None = Field(None, description="free-form: license, territories, expires_at, ...")
    platform_assets: list[PlatformVariantIn] = Field(min_length=1, max_length=20)

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str]) -> list[str]:
        cleaned = list(dict.fromkeys(t.strip().lower() for t in tags if t.strip()))
        if any(len(t) > 100 for t in cleaned):
            raise ValueError("a tag is at most 100 characters")
        return cleaned


class ManifestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch_ref: str = Field(min_length=1, max_length=200)
    items: list[ItemIn] = Field(min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _unique_refs(self):
        refs = [i.item_ref for i in self.items]
        if len(set(refs)) != len(refs):
            raise ValueError("item_ref values must be unique within a batch")
        return self


def manifest_sha256(manifest: ManifestIn) -> str:
    canonical = json.dumps(manifest.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def submit_batch(*, session: Session, account: Account, storage: Storage, work_dir: Path,
                 manifest: ManifestIn) -> tuple[Batch, bool]:  # fmt: skip
    """(batch, created). The same manifest under the same ref returns the first batch; a
    different one is a 409. All referenced blobs must be this account's verified assets,
    else nothing is created and every failing reference is listed."""
    digest = manifest_sha256(manifest)
    existing = _by_ref(session, account, manifest.batch_ref)
    if existing is not None:
        return _same_or_conflict(existing, digest), False
    hashes = [getattr(pa, f) for item in manifest.items for pa in item.platform_assets for f in BLOB_FIELDS
              if getattr(pa, f)]  # fmt: skip
    found = blobs.ensure_assets(session=session, account=account, storage=storage, work_dir=work_dir, hashes=hashes)
    errors = [
        {"item_ref": item.item_ref, "platform": pa.platform, "field": f, "sha256": getattr(pa, f),
         "error": found[getattr(pa, f)]}
        for item in manifest.items for pa in item.platform_assets for f in BLOB_FIELDS
        if getattr(pa, f) and isinstance(found[getattr(pa, f)], str)
    ]  # fmt: skip
    if errors:
        raise ApiError(400, f"batch rejected: {len(errors)} blob reference(s) are not usable; nothing was created",
                       extra={"errors": errors})  # fmt: skip
    batch = Batch(account_id=account.id, batch_ref=manifest.batch_ref, manifest_sha256=digest,
                  manifest=manifest.model_dump(mode="json"), status="pending_review")  # fmt: skip
    session.add(batch)
    try:
        session.flush()
    except IntegrityError:  # the same batch_ref committed concurrently: answer as a retry would
        session.rollback()
        return _same_or_conflict(_by_ref(session, account, manifest.batch_ref), digest), False
    for position, item in enumerate(manifest.items):
        row = BatchItem(batch_id=batch.id, account_id=account.id, position=position, item_ref=item.item_ref,
                        category=item.category, tags=item.tags, usage_rights=item.usage_rights,
                        status="pending_review")  # fmt: skip
        session.add(row)
        session.flush()
        session.add_all(ItemTag(item_id=row.id, tag=t) for t in item.tags)
        session.add_all(PlatformVariant(item_id=row.id, position=i, **pa.model_dump())
                        for i, pa in enumerate(item.platform_assets))  # fmt: skip
    session.commit()
    return batch, True


def _by_ref(session: Session, account: Account, batch_ref: str) -> Batch | None:
    return session.scalar(select(Batch).where(Batch.account_id == account.id, Batch.batch_ref == batch_ref))


def _same_or_conflict(batch: Batch, digest: str) -> Batch:
    if batch.manifest_sha256 != digest:
        raise ApiError(409, f"batch_ref {batch.batch_ref!r} was already used for a different manifest")
    return batch


def get_batch(*, session: Session, account: Account, batch_id: str) -> Batch:
    return owned(session, Batch, batch_id, account, "batch")


def list_batches(*, session: Session, account: Account, status: str | None = None, limit: int = 50,
                 offset: int = 0) -> list[Batch]:  # fmt: skip
    query = select(Batch).where(Batch.account_id == account.id)
    if status:
        query = query.where(Batch.status == status)
    return list(session.scalars(query.order_by(Batch.created_at.desc(), Batch.id).limit(limit).offset(offset)))


def move_batch(*, session: Session, batch: Batch, target: str, user_id: str | None = None,
               reason: str | None = None) -> Batch:  # fmt: skip
    """Review (approve/reject) or distribute: the batch and its items move together."""
    try:
        decision = decide(BATCH_MACHINE, batch.status, target)
    except InvalidTransition:
        raise ApiError(409, f"a batch that is {batch.status} cannot become {target}") from None
    if not decision.accepted:
        raise ApiError(409, f"the batch is already {batch.status}")
    if decision.changed:
        now = utcnow()
        batch.status = target
        if target in ("approved", "rejected"):
            batch.reviewed_by, batch.reviewed_at, batch.review_reason = user_id, now, reason
        if target == "distributed":
            batch.distributed_at = now
        for item in session.scalars(select(BatchItem).where(BatchItem.batch_id == batch.id)):
            item.status = target
        session.commit()
    return batch


def items_of(session: Session, batch: Batch) -> list[BatchItem]:
    return list(session.scalars(select(BatchItem).where(BatchItem.batch_id == batch.id).order_by(BatchItem.position)))


def variants_of(session: Session, item: BatchItem) -> list[PlatformVariant]:
    return list(session.scalars(select(PlatformVariant).where(PlatformVariant.item_id == item.id)
                                .order_by(PlatformVariant.position)))  # fmt: skip


def find_items(*, session: Session, account: Account, statuses: tuple[str, ...] | None = None, tag: str | None = None,
               category: str | None = None, platform: str | None = None, text: str | None = None,
               batch_id: str | None = None, limit: int = 50, offset: int = 0) -> list[BatchItem]:  # fmt: skip
    """Items of the account, filtered; `text` matches item refs, captions and hooks."""
    query = select(BatchItem).where(BatchItem.account_id == account.id)
    if statuses:
        query = query.where(BatchItem.status.in_(statuses))
    if batch_id:
        query = query.where(BatchItem.batch_id == batch_id)
    if tag:
        query = query.where(BatchItem.id.in_(select(ItemTag.item_id).where(ItemTag.tag == tag.strip().lower())))
    if category:
        query = query.where(BatchItem.category == category)
    if platform or text:
        variants = select(PlatformVariant.item_id)
        if platform:
            variants = variants.where(PlatformVariant.platform == platform)
        if text:
            like = f"%{text.strip()}%"
            variants = variants.where(PlatformVariant.caption.ilike(like) | PlatformVariant.hook.ilike(like))
        condition = BatchItem.id.in_(variants)
        if text and not platform:
            condition = condition | BatchItem.item_ref.ilike(f"%{text.strip()}%")
        query = query.where(condition)
    return list(session.scalars(query.order_by(BatchItem.batch_id, BatchItem.position).limit(limit).offset(offset)))


def item_view(*, session: Session, item: BatchItem, blob_view) -> dict:
    """An item with its platform assets; `blob_view(sha256)` renders each referenced blob."""
    batch = session.get(Batch, item.batch_id)
    return {
        "item_id": item.id, "item_ref": item.item_ref, "batch_id": item.batch_id, "batch_ref": batch.batch_ref,
        "status": item.status, "category": item.category, "tags": item.tags, "usage_rights": item.usage_rights,
        "platform_assets": [
            {"platform": pa.platform, "caption": pa.caption, "hook": pa.hook,
             **{f.removesuffix("_sha256"): blob_view(getattr(pa, f)) for f in BLOB_FIELDS if getattr(pa, f)}}
            for pa in variants_of(session, item)
        ],
    }  # fmt: skip


def batch_view(*, session: Session, batch: Batch, with_items: bool = True, blob_view=None) -> dict:
    view = {
        "batch_id": batch.id, "batch_ref": batch.batch_ref, "status": batch.status,
        "review_reason": batch.review_reason, "reviewed_by": batch.reviewed_by,
        "reviewed_at": _iso(batch.reviewed_at), "distributed_at": _iso(batch.distributed_at),
        "created_at": _iso(batch.created_at), "manifest_sha256": batch.manifest_sha256,
    }  # fmt: skip
    items = items_of(session, batch)
    view["item_count"] = len(items)
    if with_items:
        view["items"] = [item_view(session=session, item=i, blob_view=blob_view or _bare_blob) for i in items]
    return view


def _bare_blob(sha256: str) -> dict:
    return {"sha256": sha256}


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None
