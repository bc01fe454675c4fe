"""v1 batch endpoints: submit a manifest, review it, list and filter what was ingested."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from control_plane import envelope
from control_plane.accounts.service import owned, require_scope
from control_plane.batches import service
from control_plane.blobs import service as blobs
from control_plane.blobs.views import base_url
from control_plane.deps import (
    AssetsReadAccount,
    AssetsWriteAccount,
    CurrentPrincipal,
    SessionDep,
    SettingsDep,
    StorageDep,
)
from control_plane.errors import ApiError
from reelfarm.models.accounts import Account
from reelfarm.models.batches import BatchItem
from reelfarm.settings import Settings
from reelfarm.storage import Storage

router = APIRouter(prefix="/api/v1", tags=["v1 ingest"])

BatchStatus = Literal["pending_review", "approved", "rejected", "distributed"]


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    manifest: service.ManifestIn


class Review(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=2000)


class Rejection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)


def blob_renderer(*, session: Session, account: Account, settings: Settings, storage: Storage, request: Request,
                  with_urls: bool):  # fmt: skip
    def render(sha256: str) -> dict:
        asset = blobs.get_asset(session=session, account=account, sha256=sha256)
        if asset is None:  # (a batch only references verified assets of its account)
            return {"sha256": sha256}
        return blobs.asset_view(session=session, asset=asset, settings=settings, storage=storage,
                                base_url=base_url(request), with_urls=with_urls)  # fmt: skip

    return render


@router.post("/batches", summary="Submit a batch manifest (atomic; idempotent per batch_ref)", status_code=201)
def submit_batch(body: BatchRequest, request: Request, account: AssetsWriteAccount, session: SessionDep,
                 settings: SettingsDep, storage: StorageDep):  # fmt: skip
    batch, created = service.submit_batch(session=session, account=account, storage=storage,
                                          work_dir=settings.resolved_work_dir, manifest=body.manifest)  # fmt: skip
    data = service.batch_view(session=session, batch=batch, with_items=False)
    if created:
        return envelope.ok("batch accepted: its items are pending review", data)
    return JSONResponse(envelope.ok("batch already submitted with this manifest", data), status_code=200)


@router.get("/batches", summary="The account's batches, newest first; filter by status")
def list_batches(account: AssetsReadAccount, session: SessionDep, status: BatchStatus | None = None,
                 limit: int = Query(50, ge=1, le=200), offset: int = Query(0, ge=0, le=service.MAX_OFFSET)):  # fmt: skip
    batches = service.list_batches(session=session, account=account, status=status, limit=limit, offset=offset)
    return envelope.ok(f"{len(batches)} batches",
               {"batches": [service.batch_view(session=session, batch=b, with_items=False) for b in batches]})


@router.get("/batches/{batch_id}", summary="A batch with its items and platform assets")
def get_batch(batch_id: str, request: Request, account: AssetsReadAccount, session: SessionDep,
              settings: SettingsDep, storage: StorageDep):  # fmt: skip
    batch = service.get_batch(session=session, account=account, batch_id=batch_id)
    render = blob_renderer(session=session, account=account, settings=settings, storage=storage, request=request,
                           with_urls=False)  # fmt: skip
    return envelope.ok("batch", service.batch_view(session=session, batch=batch, blob_view=render))


def _reviewer(principal) -> str:
    """Review is a person's decision: a signed-in owner or admin, never an API key."""
    if principal.via != "session":
        raise ApiError(403, "batches are reviewed by a signed-in owner or admin, not with an API key")
    if principal.role not in ("owner", "admin"):
        raise ApiError(403, "needs the owner or admin role")
    return principal.user.id


@router.post("/batches/{batch_id}/approve", summary="Approve a batch (owner/admin): its items become visible to agents")
def approve_batch(batch_id: str, principal: CurrentPrincipal, session: SessionDep, body: Review | None = None):
    batch = service.get_batch(session=session, account=principal.account, batch_id=batch_id)
    user_id = _reviewer(principal)
    batch = service.move_batch(session=session, batch=batch, target="approved", user_id=user_id,
                               reason=body.reason if body else None)  # fmt: skip
    return envelope.ok("batch approved", service.batch_view(session=session, batch=batch, with_items=False))


@router.post("/batches/{batch_id}/reject", summary="Reject a batch with a reason (owner/admin)")
def reject_batch(batch_id: str, body: Rejection, principal: CurrentPrincipal, session: SessionDep):
    batch = service.get_batch(session=session, account=principal.account, batch_id=batch_id)
    user_id = _reviewer(principal)
    batch = service.move_batch(session=session, batch=batch, target="rejected", user_id=user_id, reason=body.reason)
    return envelope.ok("batch rejected", service.batch_view(session=session, batch=batch, with_items=False))


@router.post("/batches/{batch_id}/distribute", summary="Mark an approved batch distributed")
def distribute_batch(batch_id: str, principal: CurrentPrincipal, session: SessionDep):
    batch = service.get_batch(session=session, account=principal.account, batch_id=batch_id)
    if principal.via == "session":
        _reviewer(principal)
    else:
        require_scope(principal, "assets:write")
    batch = service.move_batch(session=session, batch=batch, target="distributed")
    return envelope.ok("batch distributed", service.batch_view(session=session, batch=batch, with_items=False))


@router.get("/assets", summary="Ingested items with their platform assets; filter by status, tag, category, platform, text")
def list_items(request: Request, account: AssetsReadAccount, session: SessionDep, settings: SettingsDep,
               storage: StorageDep, status: BatchStatus | None = None, tag: str | None = Query(None, max_length=100),
               category: str | None = Query(None, max_length=100), platform: str | None = Query(None, max_length=50),
               q: str | None = Query(None, max_length=200), batch_id: str | None = Query(None, max_length=32),
               limit: int = Query(50, ge=1, le=200), offset: int = Query(0, ge=0, le=service.MAX_OFFSET)):  # fmt: skip
    items = service.find_items(session=session, account=account, statuses=(status,) if status else None, tag=tag,
                               category=category, platform=platform, text=q, batch_id=batch_id, limit=limit,
                               offset=offset)  # fmt: skip
    render = blob_renderer(session=session, account=account, settings=settings, storage=storage, request=request,
                           with_urls=False)  # fmt: skip
    return envelope.ok(f"{len(items)} items", {"items": [service.item_view(session=session, item=i, blob_view=render)
                                                 for i in items]})  # fmt: skip


@router.get("/assets/{item_id}", summary="One ingested item, with signed download URLs for its blobs")
def get_item(item_id: str, request: Request, account: AssetsReadAccount, session: SessionDep, settings: SettingsDep,
             storage: StorageDep):  # fmt: skip
    item = owned(session, BatchItem, item_id, account, "asset")
    render = blob_renderer(session=session, account=account, settings=settings, storage=storage, request=request,
                           with_urls=True)  # fmt: skip
    return envelope.ok("asset", service.item_view(session=session, item=item, blob_view=render))
