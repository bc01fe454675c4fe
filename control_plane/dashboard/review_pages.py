"""Dashboard pages for review: the batch approval queue and campaigns.

Batches (seeds/000): the queue lists batches awaiting approval first, then the others;
approving or rejecting is one click (batches.service.move_batch), a person's decision as
in the API: a signed-in owner or admin. With htmx the batch's row is swapped in place;
a plain form redirects back.

Campaigns (seeds/004): the list, a form that makes one (campaigns.service.create_campaign:
the same checks, pre-flight fetch and quota as POST /api/v1/campaigns), a campaign with its
videos (served by the API's file and poster routes, which take the session cookie), and
its Approve (review -> published) and Cancel buttons.

Another workspace's batch or campaign is a 404: every lookup goes through the services'
tenancy checks with the signed-in account.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from control_plane.accounts.service import Principal
from control_plane.batches import service as batches
from control_plane.batches.views import blob_renderer
from control_plane.campaigns import service as campaigns
from control_plane.dashboard.web import PREFIX, CsrfChecked, Flash, PagePrincipal, redirect, render
from control_plane.deps import SessionDep, SettingsDep, StorageDep
from control_plane.errors import ApiError
from reelfarm.campaigns import DEFAULT_LANGUAGES, VOICE_ENGINES
from reelfarm.states import CAMPAIGN_MACHINE, CampaignStatus

router = APIRouter(prefix=PREFIX, include_in_schema=False)

PENDING = "pending_review"
QUEUE_LIMIT = 50
DEFAULT_REJECT_REASON = "rejected in the dashboard"


# ------------------------------------------------------------------ batches


def _reviewer(principal: Principal) -> str:
    """As the API's review: a signed-in owner or admin (pages are always a signed-in person)."""
    if principal.role not in ("owner", "admin"):
        raise ApiError(403, "batches are reviewed by an owner or admin of the workspace")
    return principal.user.id


def _batch_views(request: Request, session, principal: Principal, settings, storage, batch_list, with_urls=False):
    render_blob = blob_renderer(session=session, account=principal.account, settings=settings, storage=storage,
                                request=request, with_urls=with_urls)  # fmt: skip
    return [batches.batch_view(session=session, batch=b, blob_view=render_blob) for b in batch_list]


@router.get("/batches")
def batches_page(request: Request, principal: PagePrincipal, session: SessionDep, settings: SettingsDep,
                 storage: StorageDep):  # fmt: skip
    pending = batches.list_batches(session=session, account=principal.account, status=PENDING, limit=QUEUE_LIMIT)
    others = [b for b in batches.list_batches(session=session, account=principal.account, limit=QUEUE_LIMIT)
              if b.status != PENDING]  # fmt: skip
    return render(request, "batches_list.html", session=session, principal=principal,
                  pending=_batch_views(request, session, principal, settings, storage, pending),
                  others=_batch_views(request, session, principal, settings, storage, others),
                  can_review=principal.role in ("owner", "admin"))  # fmt: skip


@router.get("/batches/{batch_id}")
def batch_page(batch_id: str, request: Request, principal: PagePrincipal, session: SessionDep, settings: SettingsDep,
               storage: StorageDep):  # fmt: skip
    batch = batches.get_batch(session=session, account=principal.account, batch_id=batch_id)
    view = _batch_views(request, session, principal, settings, storage, [batch], with_urls=True)[0]
    return render(request, "batches_detail.html", session=session, principal=principal, batch=view,
                  can_review=principal.role in ("owner", "admin"))  # fmt: skip


async def _review(request: Request, batch_id: str, target: str, principal: Principal, session, settings, storage):
    form = await request.form()
    reason = str(form.get("reason") or "").strip()[:2000] or None
    if target == "rejected" and reason is None:
        reason = DEFAULT_REJECT_REASON
    back = form.get("next")
    back = back if isinstance(back, str) and back.startswith(f"{PREFIX}/batches") and "//" not in back else None
    htmx = bool(request.headers.get("hx-request"))
    error = None
    try:
        batch = batches.get_batch(session=session, account=principal.account, batch_id=batch_id)
        user_id = _reviewer(principal)
        batches.move_batch(session=session, batch=batch, target=target, user_id=user_id, reason=reason)
    except ApiError as exc:
        if not htmx or exc.status_code == 404:
            raise
        error = exc.message  # shown in the row htmx swaps in (htmx swaps no 4xx answer)
    if not htmx:
        return redirect(back or f"{PREFIX}/batches")
    view = _batch_views(request, session, principal, settings, storage, [batch])[0]
    flash = Flash("error", error) if error else Flash("ok", f"Batch {view['batch_ref']} {view['status']}.")
    return render(request, "_batch_row.html", session=session, principal=principal, batch=view, flash=flash,
                  can_review=principal.role in ("owner", "admin"))  # fmt: skip


@router.post("/batches/{batch_id}/approve", dependencies=[CsrfChecked])
async def approve_batch(batch_id: str, request: Request, principal: PagePrincipal, session: SessionDep,
                        settings: SettingsDep, storage: StorageDep):  # fmt: skip
    return await _review(request, batch_id, "approved", principal, session, settings, storage)


@router.post("/batches/{batch_id}/reject", dependencies=[CsrfChecked])
async def reject_batch(batch_id: str, request: Request, principal: PagePrincipal, session: SessionDep,
                       settings: SettingsDep, storage: StorageDep):  # fmt: skip
    return await _review(request, batch_id, "rejected", principal, session, settings, storage)


# ------------------------------------------------------------------ campaigns


def _campaigns_page(request: Request, session, principal: Principal, *, form=None, error: ApiError | None = None):
    listed = campaigns.list_campaigns(session=session, account=principal.account)
    response = render(request, "campaigns_list.html", session=session, principal=principal,
                      status_code=error.status_code if error else 200,
                      flashes=[Flash("error", error.message)] if error else [],
                      campaigns=[campaigns.campaign_document(session=session, campaign=c, base_url="") for c in listed],
                      voices=sorted(VOICE_ENGINES.items()), default_languages=DEFAULT_LANGUAGES,
                      values=form or {}, chosen=(form.getlist("languages") if form is not None else []))  # fmt: skip
    if error and error.headers:
        response.headers.update(error.headers)
    return response


@router.get("/campaigns")
def campaigns_page(request: Request, principal: PagePrincipal, session: SessionDep):
    return _campaigns_page(request, session, principal)


@router.post("/campaigns", dependencies=[CsrfChecked])
async def create_campaign(request: Request, principal: PagePrincipal, session: SessionDep, settings: SettingsDep):
    """The form's fields as POST /api/v1/campaigns's body: url, title, languages (none ticked: the
    default), webhook_url."""
    form = await request.form()
    body: dict = {"url": str(form.get("url") or "")}
    languages = [str(x) for x in form.getlist("languages") if str(x).strip()]
    if languages:
        body["languages"] = languages
    for name in ("title", "webhook_url"):
        value = str(form.get(name) or "").strip()
        if value:
            body[name] = value
    try:
        campaign = await run_in_threadpool(campaigns.create_campaign, session=session, account=principal.account,
                                           body=body, settings=settings, plans=request.app.state.plans)  # fmt: skip
    except ApiError as exc:
        session.rollback()
        return _campaigns_page(request, session, principal, form=form, error=exc)
    return redirect(f"{PREFIX}/campaigns/{campaign.id}")


@router.get("/campaigns/{campaign_id}")
def campaign_page(campaign_id: str, request: Request, principal: PagePrincipal, session: SessionDep):
    campaign = campaigns.get_campaign(session=session, account=principal.account, campaign_id=campaign_id)
    document = campaigns.campaign_document(session=session, campaign=campaign, base_url="")
    status = campaign.status
    return render(request, "campaigns_detail.html", session=session, principal=principal, campaign=document,
                  voices=dict(VOICE_ENGINES), can_approve=status == CampaignStatus.review,
                  can_cancel=not CAMPAIGN_MACHINE.is_terminal(status) and status != CampaignStatus.review,
                  working=not CAMPAIGN_MACHINE.is_terminal(status) and status != CampaignStatus.review)  # fmt: skip


@router.post("/campaigns/{campaign_id}/approve", dependencies=[CsrfChecked])
def approve_campaign(campaign_id: str, principal: PagePrincipal, session: SessionDep):
    campaigns.approve(session=session, account=principal.account, campaign_id=campaign_id)
    return redirect(f"{PREFIX}/campaigns/{campaign_id}")


@router.post("/campaigns/{campaign_id}/cancel", dependencies=[CsrfChecked])
def cancel_campaign(campaign_id: str, principal: PagePrincipal, session: SessionDep):
    campaigns.cancel(session=session, account=principal.account, campaign_id=campaign_id)
    return redirect(f"{PREFIX}/campaigns/{campaign_id}")
