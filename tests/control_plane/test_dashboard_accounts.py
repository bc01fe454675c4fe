"""The dashboard's account pages: sign-up and login forms, the workspace switcher, and the
settings tabs (API keys, members and invitations, webhooks, usage), driven as a browser drives
them: forms with the CSRF token read from the page, redirects looked at one by one."""

from __future__ import annotations

import re
from html import unescape

import pytest
from api_fixtures import stand_in_node
from fastapi.testclient import TestClient
from sqlalchemy import select

from control_plane.accounts import service as accounts
from control_plane.accounts.login_limits import LOGIN_PER_EMAIL, LOGIN_PER_IP
from control_plane.main import create_app
from harness.polling import wait_until
from harness.webhook_receiver import WebhookReceiver
from reelfarm import quotas
from reelfarm.database import make_engine, make_session_factory, session_scope
from reelfarm.job_lifecycle import finish_job
from reelfarm.migrate import upgrade
from reelfarm.models import Job
from reelfarm.models.accounts import Account, ApiKey, Invitation, User
from reelfarm.models.webhooks import WebhookDelivery
from reelfarm.states import JobStatus

PASSWORD = "correct horse battery"


@pytest.fixture
def browsers(api_app):
    """A factory of browsers on the app (redirects not followed, so each can be checked)."""
    made = []

    def make() -> TestClient:
        client = TestClient(api_app, follow_redirects=False)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def _token(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "no CSRF token on the page"
    return match.group(1)


def _post(browser: TestClient, path: str, data: dict | None = None, *, from_page: str = "/dashboard/login"):
    """POST a form as the browser would after loading `from_page` (which carries the token)."""
    page = browser.get(from_page)
    assert page.status_code == 200, page.text
    return browser.post(path, data={"csrf_token": _token(page.text), **(data or {})},
                        headers={"referer": f"http://testserver{from_page}"})  # fmt: skip


def _sign_up(browsers, email: str, account: str = "") -> TestClient:
    browser = browsers()
    response = _post(browser, "/dashboard/signup", {"email": email, "password": PASSWORD, "account_name": account},
                     from_page="/dashboard/signup")  # fmt: skip
    assert response.status_code == 303 and response.headers["location"] == "/dashboard/jobs", response.text
    return browser


def _me(browser: TestClient) -> dict:
    response = browser.get("/api/auth/me")
    assert response.status_code == 200, response.text
    return response.json()


def _input_value(page: str, element_id: str) -> str:
    match = re.search(rf'<input[^>]*id="{element_id}"[^>]*value="([^"]*)"', page)
    assert match, f"no #{element_id} on the page"
    return unescape(match.group(1))


def _error_status(response) -> int:
    """The status the HTML error page states (and answers with)."""
    match = re.search(r'data-status="(\d+)"', response.text)
    assert match, response.text
    assert "text/html" in response.headers["content-type"]
    return int(match.group(1))


# ------------------------------------------------------------------ sign up, log in, log out


def test_sign_up_log_out_and_log_in_through_the_forms(browsers):
    anonymous = browsers()
    assert anonymous.get("/dashboard").headers["location"] == "/dashboard/login"
    form = anonymous.get("/dashboard/signup")
    assert form.status_code == 200
    for field in ("email", "password", "account_name"):
        assert re.search(rf'<label for="signup-[a-z]+">[^<]*\s*(<span[^>]*>[^<]*</span>\s*)?<input[^>]*name="{field}"',
                         form.text), field  # fmt: skip

    browser = _sign_up(browsers, "Ada@Example.com", account="Analytical")
    cookie = browser.cookies.get("reels_session")
    me = _me(browser)  # the API accepts the dashboard's login: the same cookie
    assert me["email"] == "ada@example.com" and me["role"] == "owner" and me["accountName"] == "Analytical"
    assert browser.get("/dashboard").headers["location"] == "/dashboard/jobs"

    out = _post(browser, "/dashboard/logout", from_page="/dashboard/settings/keys")
    assert out.status_code == 303 and out.headers["location"] == "/dashboard/login"
    assert 'reels_session=""' in out.headers["set-cookie"] or "Max-Age=0" in out.headers["set-cookie"]
    browser.cookies.set("reels_session", cookie)  # the old cookie is dead, not only forgotten
    assert browser.get("/api/auth/me").status_code == 401
    gated = browser.get("/dashboard/settings/keys")
    assert gated.status_code == 303 and gated.headers["location"] == "/dashboard/login?next=/dashboard/settings/keys"

    wrong = _post(browser, "/dashboard/login", {"email": "ada@example.com", "password": "not the password!",
                                                "next": "/dashboard/settings/keys"})  # fmt: skip
    assert wrong.status_code == 401 and "wrong email or password" in wrong.text
    assert 'value="ada@example.com"' in wrong.text and "not the password!" not in wrong.text
    assert 'name="next" value="/dashboard/settings/keys"' in wrong.text  # kept for the next try
    ok = _post(browser, "/dashboard/login", {"email": "ADA@example.com", "password": PASSWORD,
                                             "next": "/dashboard/settings/keys"})  # fmt: skip
    assert ok.status_code == 303 and ok.headers["location"] == "/dashboard/settings/keys"
    assert "HttpOnly" in ok.headers["set-cookie"] and "SameSite=lax" in ok.headers["set-cookie"]
    assert _me(browser)["email"] == "ada@example.com"


@pytest.mark.parametrize("target", ["https://evil.example/x", "//evil.example/x", "/\\evil.example", "/api/keys",
                                    "javascript:alert(1)"])  # fmt: skip
def test_login_does_not_redirect_off_the_dashboard(browsers, target):
    _sign_up(browsers, "next@example.com")
    browser = browsers()
    response = _post(browser, "/dashboard/login", {"email": "next@example.com", "password": PASSWORD, "next": target})
    assert response.status_code == 303 and response.headers["location"] == "/dashboard"


def test_form_errors_keep_what_was_typed_except_the_password(browsers):
    _sign_up(browsers, "taken@example.com")
    browser = browsers()
    short = _post(browser, "/dashboard/signup", {"email": "new@example.com", "password": "short", "account_name": "Co"},
                  from_page="/dashboard/signup")  # fmt: skip
    assert short.status_code == 400 and "at least 10 characters" in short.text
    assert 'value="new@example.com"' in short.text and 'value="Co"' in short.text
    assert 'id="signup-password-error"' in short.text
    taken = _post(browser, "/dashboard/signup", {"email": "TAKEN@example.com", "password": PASSWORD},
                  from_page="/dashboard/signup")  # fmt: skip
    assert taken.status_code == 400 and "exists already" in taken.text and PASSWORD not in taken.text
    assert browser.cookies.get("reels_session") is None


def test_forms_without_the_csrf_token_are_refused(browsers):
    browser = _sign_up(browsers, "csrf@example.com")
    for path, data in (("/dashboard/login", {"email": "csrf@example.com", "password": PASSWORD}),
                       ("/dashboard/signup", {"email": "x@example.com", "password": PASSWORD}),
                       ("/dashboard/settings/keys", {"name": "ci"}), ("/dashboard/logout", {})):  # fmt: skip
        missing = browser.post(path, data=data)
        assert missing.status_code == 403 and _error_status(missing) == 403, path
        forged = browser.post(path, data={**data, "csrf_token": "0" * 64})
        assert forged.status_code == 403, path
    assert _me(browser)["email"] == "csrf@example.com"  # the logout was refused too
    with browser.app.state.session_factory() as session:
        assert session.scalar(select(ApiKey.id)) is None


def test_logins_are_rate_limited_per_address_and_per_ip_on_both_surfaces(api, browsers):
    _sign_up(browsers, "target@example.com")
    wrong = {"email": "target@example.com", "password": "guess guess guess"}
    for _ in range(LOGIN_PER_EMAIL):
        assert api.post("/api/auth/login", json=wrong).status_code == 401
    refused = api.post("/api/auth/login", json={**wrong, "password": PASSWORD})  # even the right one, for now
    assert refused.status_code == 429
    assert "too many login attempts" in refused.json()["error"]
    assert int(refused.headers["retry-after"]) >= 1
    assert "reels_session" not in refused.headers.get("set-cookie", "")

    # The dashboard counts against the same windows: the address is refused there too...
    browser = browsers()
    page = _post(browser, "/dashboard/login", {**wrong, "password": PASSWORD})
    assert page.status_code == 429 and _error_status(page) == 429 and int(page.headers["retry-after"]) >= 1
    # ... and this client's IP has LOGIN_PER_IP attempts a minute, whatever the address.
    for n in range(LOGIN_PER_IP - LOGIN_PER_EMAIL):
        attempt = _post(browser, "/dashboard/login", {"email": f"nobody{n}@example.com", "password": "guess guess"})
        assert attempt.status_code == 401, n
    over = _post(browser, "/dashboard/login", {"email": "someone.else@example.com", "password": "guess guess"})
    assert over.status_code == 429 and "too many login attempts" in over.text
    assert api.post("/api/auth/login", json={"email": "third@example.com", "password": "x" * 12}).status_code == 429


# ------------------------------------------------------------------ API keys


def test_a_new_key_is_shown_once_listed_by_prefix_used_and_revoked(api, browsers):
    browser = _sign_up(browsers, "keys@example.com")
    created = _post(browser, "/dashboard/settings/keys", {"name": "CI runner", "scopes": ["jobs:read", "clips:read"]},
                    from_page="/dashboard/settings/keys")  # fmt: skip
    assert created.status_code == 200, created.text
    assert created.headers["cache-control"] == "no-store"
    plaintext = _input_value(created.text, "new-key")
    assert plaintext.startswith(accounts.KEY_PREFIX)
    assert 'id="copy-new-key"' in created.text and "navigator.clipboard" in created.text
    with browser.app.state.session_factory() as session:
        key = session.scalar(select(ApiKey).where(ApiKey.key_hash == accounts.hash_key(plaintext)))
        assert key.name == "CI runner" and key.scopes == ["jobs:read", "clips:read"] and key.last_used_at is None

    listed = browser.get("/dashboard/settings/keys")
    assert listed.status_code == 200 and plaintext not in listed.text  # never shown again
    row = re.search(rf'<tr id="key-{key.id}".*?</tr>', listed.text, re.DOTALL).group(0)
    assert key.prefix in row and "CI runner" in row and "never" in row and "active" in row

    used = api.get("/api/v1/webhooks/deliveries", headers={"X-API-Key": plaintext})
    assert used.status_code == 200, used.text
    with browser.app.state.session_factory() as session:
        assert session.get(ApiKey, key.id).last_used_at is not None
    row = re.search(rf'<tr id="key-{key.id}".*?</tr>', browser.get("/dashboard/settings/keys").text, re.DOTALL).group(0)
    assert "never" not in row and "<time" in row.split('class="last-used"')[1]

    revoked = _post(browser, f"/dashboard/settings/keys/{key.id}/revoke", from_page="/dashboard/settings/keys")
    assert revoked.status_code == 303 and revoked.headers["location"] == "/dashboard/settings/keys?done=key-revoked"
    page = browser.get(revoked.headers["location"]).text
    row = re.search(rf'<tr id="key-{key.id}".*?</tr>', page, re.DOTALL).group(0)
    assert "revoked" in row and "/revoke" not in row and "The key was revoked" in page
    assert api.get("/api/v1/webhooks/deliveries", headers={"X-API-Key": plaintext}).status_code == 401


def test_keys_of_another_workspace_are_not_found(browsers):
    owner = _sign_up(browsers, "mine@example.com")
    _post(owner, "/dashboard/settings/keys", {"name": "mine"}, from_page="/dashboard/settings/keys")
    with owner.app.state.session_factory() as session:
        key_id = session.scalar(select(ApiKey.id))
    stranger = _sign_up(browsers, "stranger@example.com")
    response = _post(stranger, f"/dashboard/settings/keys/{key_id}/revoke", from_page="/dashboard/settings/keys")
    assert response.status_code == 404 and _error_status(response) == 404
    assert key_id not in stranger.get("/dashboard/settings/keys").text
    with owner.app.state.session_factory() as session:
        assert session.get(ApiKey, key_id).revoked_at is None


def test_a_key_needs_a_name(browsers):
    browser = _sign_up(browsers, "named@example.com")
    response = _post(browser, "/dashboard/settings/keys", {"name": "  ", "scopes": ["jobs:read"]},
                     from_page="/dashboard/settings/keys")  # fmt: skip
    assert response.status_code == 400 and "Give the key a name" in response.text and 'id="new-key"' not in response.text


# ------------------------------------------------------------------ members, invitations, the switcher


def test_members_invitations_and_switching_workspaces(api, browsers):
    owner = _sign_up(browsers, "boss@example.com", account="Studio")
    studio = _me(owner)["accountId"]
    helper = _sign_up(browsers, "helper@example.com", account="Helper's own")
    own = _me(helper)["accountId"]

    # An existing user becomes a member at once.
    added = _post(owner, "/dashboard/settings/members", {"email": "Helper@example.com", "role": "member"},
                  from_page="/dashboard/settings/members")  # fmt: skip
    assert added.status_code == 303 and added.headers["location"].endswith("?done=member-added")
    again = _post(owner, "/dashboard/settings/members", {"email": "helper@example.com", "role": "admin"},
                  from_page="/dashboard/settings/members")  # fmt: skip
    assert again.status_code == 409 and "already a member" in again.text

    # The helper now has two workspaces: the switcher appears, and switches.
    page = helper.get("/dashboard/settings/members").text
    assert 'id="workspace-switch"' in page and f'value="{studio}"' in page
    switched = _post(helper, "/dashboard/workspaces/switch", {"account_id": studio}, from_page="/dashboard/settings/usage")
    assert switched.status_code == 303 and switched.headers["location"] == "/dashboard/settings/usage"
    me = _me(helper)
    assert me["accountId"] == studio and me["role"] == "member"
    members = helper.get("/dashboard/settings/members").text
    assert 'data-email="boss@example.com" data-role="owner"' in members
    assert 'data-email="helper@example.com" data-role="member"' in members
    assert studio in members  # the settings show the workspace's account id

    # A member may look but not manage.
    keys = helper.get("/dashboard/settings/keys")
    assert keys.status_code == 200 and "Only owners and admins" in keys.text and 'id="key-name"' not in keys.text
    for path, data in (("/dashboard/settings/keys", {"name": "sneaky"}),
                       ("/dashboard/settings/members", {"email": "x@example.com", "role": "member"}),
                       ("/dashboard/settings/webhooks/rotate", {})):  # fmt: skip
        refused = _post(helper, path, data, from_page="/dashboard/settings/keys")
        assert refused.status_code == 403 and _error_status(refused) == 403, path
    webhooks = helper.get("/dashboard/settings/webhooks")
    assert webhooks.status_code == 200 and "whsec_" not in webhooks.text

    # Back again; a workspace one does not belong to is not found.
    assert _post(helper, "/dashboard/workspaces/switch", {"account_id": own},
                 from_page="/dashboard/settings/keys").status_code == 303  # fmt: skip
    assert _me(helper)["accountId"] == own
    stranger = _sign_up(browsers, "stranger@example.com")
    refused = _post(stranger, "/dashboard/workspaces/switch", {"account_id": studio}, from_page="/dashboard/settings/keys")
    assert refused.status_code == 404 and _me(stranger)["accountId"] != studio


def test_roles_are_changed_and_members_removed_from_the_members_page(browsers):
    owner = _sign_up(browsers, "chief@example.com", account="Crew")
    crew, chief = _me(owner)["accountId"], _me(owner)["userId"]
    helper = _sign_up(browsers, "helper@example.com")
    helper_id = _me(helper)["userId"]
    members = "/dashboard/settings/members"
    assert _post(owner, members, {"email": "helper@example.com", "role": "admin"}, from_page=members).status_code == 303

    # Each row has a labelled role select with a Save button, and a Remove button.
    page = owner.get(members).text
    for user_id in (chief, helper_id):
        assert f'action="/dashboard/settings/members/{user_id}/role"' in page
        assert f'action="/dashboard/settings/members/{user_id}/remove"' in page
        assert re.search(rf'<label for="role-{user_id}">.*?<select id="role-{user_id}" name="role">', page, re.DOTALL)
    changed = _post(owner, f"{members}/{helper_id}/role", {"role": "member"}, from_page=members)
    assert changed.status_code == 303 and changed.headers["location"].endswith("?done=role-changed")
    page = owner.get(changed.headers["location"]).text
    assert 'data-email="helper@example.com" data-role="member"' in page and "role was changed" in page
    bad = _post(owner, f"{members}/{helper_id}/role", {"role": "boss"}, from_page=members)
    assert bad.status_code == 400 and "role must be one of" in bad.text

    # A member sees no controls, and is refused all the same.
    assert _post(helper, "/dashboard/workspaces/switch", {"account_id": crew}, from_page=members).status_code == 303
    assert _me(helper)["accountId"] == crew
    page = helper.get(members).text
    assert "/role" not in page and "/remove" not in page
    for path, data in ((f"{members}/{chief}/role", {"role": "member"}), (f"{members}/{chief}/remove", {})):
        refused = _post(helper, path, data, from_page=members)
        assert refused.status_code == 403 and _error_status(refused) == 403, path

    # An admin manages admins and members but not the owner (no controls on the owner's row).
    assert _post(owner, f"{members}/{helper_id}/role", {"role": "admin"}, from_page=members).status_code == 303
    page = helper.get(members).text
    assert f"{helper_id}/role" in page and f"{chief}/role" not in page and f"{chief}/remove" not in page
    assert '<option value="owner"' not in page
    for path, data in ((f"{members}/{chief}/role", {"role": "member"}), (f"{members}/{chief}/remove", {}),
                       (f"{members}/{helper_id}/role", {"role": "owner"})):  # fmt: skip
        refused = _post(helper, path, data, from_page=members)
        assert refused.status_code == 403 and "only an owner" in refused.text, path

    # The last owner stays; someone of another workspace is not found.
    for path, data in ((f"{members}/{chief}/role", {"role": "admin"}), (f"{members}/{chief}/remove", {})):
        last = _post(owner, path, data, from_page=members)
        assert last.status_code == 409 and "at least one owner" in last.text, path
        assert 'data-email="chief@example.com" data-role="owner"' in last.text  # the page, with its error
    stranger = _sign_up(browsers, "stranger@example.com")
    stranger_id = _me(stranger)["userId"]
    for path in (f"{members}/{stranger_id}/role", f"{members}/{stranger_id}/remove"):
        missing = _post(owner, path, {"role": "member"}, from_page=members)
        assert missing.status_code == 404 and _error_status(missing) == 404, path
    assert _me(stranger)["role"] == "owner"

    # Removed: gone from the list, and their login in this workspace ends at once.
    removed = _post(owner, f"{members}/{helper_id}/remove", from_page=members)
    assert removed.status_code == 303 and removed.headers["location"].endswith("?done=member-removed")
    assert 'data-email="helper@example.com"' not in owner.get(members).text
    assert helper.get("/api/auth/me").status_code == 401
    assert helper.get(members).headers["location"].startswith("/dashboard/login")


def test_an_admin_may_leave_from_the_page(browsers):
    owner = _sign_up(browsers, "lead2@example.com", account="Guild")
    guild = _me(owner)["accountId"]
    admin = _sign_up(browsers, "second@example.com")
    members = "/dashboard/settings/members"
    assert _post(owner, members, {"email": "second@example.com", "role": "admin"}, from_page=members).status_code == 303
    assert _post(admin, "/dashboard/workspaces/switch", {"account_id": guild}, from_page=members).status_code == 303
    left = _post(admin, f"{members}/{_me(admin)['userId']}/remove", from_page=members)
    assert left.status_code == 303 and left.headers["location"] == "/dashboard/login"
    assert 'reels_session=""' in left.headers["set-cookie"] or "Max-Age=0" in left.headers["set-cookie"]
    assert [m["email"] for m in owner.get("/api/accounts/members").json()] == ["lead2@example.com"]


def test_an_unknown_address_is_invited_and_joins_on_sign_up(api, browsers):
    owner = _sign_up(browsers, "founder@example.com", account="Startup")
    startup = _me(owner)["accountId"]
    invited = _post(owner, "/dashboard/settings/members", {"email": "New.Hire@example.com", "role": "admin"},
                    from_page="/dashboard/settings/members")  # fmt: skip
    assert invited.status_code == 303 and invited.headers["location"].endswith("?done=invited")
    page = owner.get("/dashboard/settings/members").text
    assert 'data-email="new.hire@example.com" data-role="admin"' in page and "pending" in page
    twice = _post(owner, "/dashboard/settings/members", {"email": "new.hire@example.com", "role": "member"},
                  from_page="/dashboard/settings/members")  # fmt: skip
    assert twice.status_code == 409 and "already invited" in twice.text

    # The API answers an unknown address with a pending invitation too, and lists them.
    by_api = owner.post("/api/accounts/members", json={"email": "later@example.com", "role": "member"})
    assert by_api.status_code == 201
    assert by_api.json()["status"] == "pending" and by_api.json()["userId"] is None
    listed = owner.get("/api/accounts/invitations").json()
    assert sorted(i["email"] for i in listed) == ["later@example.com", "new.hire@example.com"]
    # Withdrawn from the page: it is gone, and that address signs up to nothing of ours.
    withdrawn = _post(owner, f"/dashboard/settings/members/invites/{by_api.json()['invitationId']}/revoke",
                      from_page="/dashboard/settings/members")  # fmt: skip
    assert withdrawn.status_code == 303
    assert [i["email"] for i in owner.get("/api/accounts/invitations").json()] == ["new.hire@example.com"]
    later = _sign_up(browsers, "later@example.com")
    assert 'id="workspace-switch"' not in later.get("/dashboard/settings/keys").text

    # Signing up takes the invitation: a workspace of their own, and a seat in the inviting one.
    hire = _sign_up(browsers, "new.hire@example.com")
    assert _me(hire)["accountId"] != startup  # the session starts in their own workspace
    page = hire.get("/dashboard/settings/keys").text
    assert 'id="workspace-switch"' in page and f'value="{startup}"' in page
    roles = {m["email"]: m["role"] for m in owner.get("/api/accounts/members").json()}
    assert roles == {"founder@example.com": "owner", "new.hire@example.com": "admin"}
    assert owner.get("/api/accounts/invitations").json() == []
    assert 'data-email="new.hire@example.com" data-role="admin"' in owner.get("/dashboard/settings/members").text


def test_an_invitation_is_taken_up_at_login(browsers):
    """A user made outside sign-up (the CLI's make_owner) joins when they next log in."""
    owner = _sign_up(browsers, "lead@example.com", account="Lab")
    lab = _me(owner)["accountId"]
    _post(owner, "/dashboard/settings/members", {"email": "ops@example.com", "role": "member"},
          from_page="/dashboard/settings/members")  # fmt: skip
    with session_scope(owner.app.state.session_factory) as session:
        elsewhere = accounts.get_or_create_account(session=session, name="Elsewhere", plan="business")
        accounts.make_owner(session=session, account=elsewhere, email="ops@example.com", password=PASSWORD)
    ops = browsers()
    assert _post(ops, "/dashboard/login", {"email": "ops@example.com", "password": PASSWORD}).status_code == 303
    with owner.app.state.session_factory() as session:
        user = session.scalar(select(User).where(User.email == "ops@example.com"))
        assert accounts.role_in(session=session, user=user, account_id=lab) == "member"
        assert session.scalar(select(Invitation.accepted_at).where(Invitation.email == "ops@example.com")) is not None


# ------------------------------------------------------------------ webhooks


def _served_app(settings):
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    factory = make_session_factory(engine)
    stand_in_node(factory)
    return create_app(settings.model_copy(update={"fetch_allow_networks": ["127.0.0.0/8"]}),
                      session_factory=factory), engine  # fmt: skip


def test_webhook_secret_rotation_and_replay(settings):
    app, engine = _served_app(settings)
    try:
        with TestClient(app), WebhookReceiver() as receiver:  # the lifespan runs the delivery workers
            browser = TestClient(app, follow_redirects=False)
            response = _post(browser, "/dashboard/signup", {"email": "hooks@example.com", "password": PASSWORD},
                             from_page="/dashboard/signup")  # fmt: skip
            assert response.status_code == 303
            account_id = _me(browser)["accountId"]

            page = browser.get("/dashboard/settings/webhooks")
            assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
            first = _input_value(page.text, "webhook-secret")
            assert first.startswith("whsec_") and browser.get("/api/webhooks/secret").json()["secret"] == first
            masked = re.search(r'id="webhook-secret-masked">([^<]*)<', page.text).group(1)
            assert first not in masked and masked.endswith(first[-4:])
            assert re.search(r"<details>\s*<summary>Reveal", page.text)

            rotated = _post(browser, "/dashboard/settings/webhooks/rotate", from_page="/dashboard/settings/webhooks")
            assert rotated.status_code == 303 and rotated.headers["location"].endswith("?done=rotated")
            second = _input_value(browser.get("/dashboard/settings/webhooks").text, "webhook-secret")
            assert second != first and browser.get("/api/webhooks/secret").json()["secret"] == second

            with session_scope(app.state.session_factory) as session:
                job = Job(account_id=account_id, original_name="talk.mp4", status=JobStatus.processing, api="v1",
                          webhook_url=receiver.url, progress_percent=40.0)  # fmt: skip
                session.add(job)
                session.flush()
                assert finish_job(session, job, JobStatus.failed, error="clip 1: out of memory")
                job_id = job.id
            (delivered,) = receiver.wait_for(1)
            assert delivered.verify(second)
            wait_until(lambda: _attempts(app) == 1, timeout=10, what="the delivery logged")

            log = browser.get("/dashboard/settings/webhooks").text
            rows = re.findall(r'<tr data-event-id="([^"]+)".*?</tr>', log, re.DOTALL)
            assert rows == [delivered.event_id]
            assert "job.failed" in log and job_id in log and "HTTP 200" in log

            replayed = _post(browser, f"/dashboard/settings/webhooks/events/{delivered.event_id}/replay",
                             from_page="/dashboard/settings/webhooks")  # fmt: skip
            assert replayed.status_code == 303 and replayed.headers["location"].endswith("?done=replayed")
            again = receiver.wait_for(2)[1]
            assert again.event_id == delivered.event_id and again.body == delivered.body
            wait_until(lambda: _attempts(app) == 2, timeout=10, what="the replay logged")
            log = browser.get("/dashboard/settings/webhooks").text
            assert re.findall(r'<tr data-event-id="([^"]+)"', log) == [delivered.event_id] * 2
            assert len(re.findall(r"/replay\"", log)) == 1  # one button per event

            stranger = TestClient(app, follow_redirects=False)
            _post(stranger, "/dashboard/signup", {"email": "other@example.com", "password": PASSWORD},
                  from_page="/dashboard/signup")  # fmt: skip
            refused = _post(stranger, f"/dashboard/settings/webhooks/events/{delivered.event_id}/replay",
                            from_page="/dashboard/settings/webhooks")  # fmt: skip
            assert refused.status_code == 404
            assert delivered.event_id not in stranger.get("/dashboard/settings/webhooks").text
    finally:
        engine.dispose()


def _attempts(app) -> int:
    with app.state.session_factory() as session:
        return session.query(WebhookDelivery).count()


# ------------------------------------------------------------------ usage


def test_usage_shows_this_months_videos_against_the_plan(browsers):
    browser = _sign_up(browsers, "usage@example.com")
    account_id = _me(browser)["accountId"]
    with session_scope(browser.app.state.session_factory) as session:
        session.get(Account, account_id).plan = "growth"
        assert quotas.charge(session, account_id=account_id, videos=7, limit=40) == 7
    page = browser.get("/dashboard/settings/usage")
    assert page.status_code == 200
    text = re.sub(r"<[^>]+>", "", page.text)
    assert "Growth plan" in text and "7 of 40 videos used" in text and "(33 left)" in text
    assert re.search(r'<meter id="quota-meter" min="0" max="40" value="7"', page.text)
    assert re.search(r'id="api-rate">10<', page.text) and re.search(r'id="api-keys">0 of 2<', page.text)
    assert 'aria-current="page">Usage' in page.text
