"""Accounts, logins and API keys: the rules of the reference documents."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from control_plane.accounts.service import KEY_PREFIX, SCOPES, hash_key
from reelfarm.models.accounts import ApiKey, User, UserSession


def _key(client, **body) -> dict:
    response = client.post("/api/keys", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def test_signup_sets_an_httponly_samesite_session_cookie(api):
    response = api.post("/api/auth/signup", json={"email": "Ada@Example.com", "password": "a long password!"})
    assert response.status_code == 201
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("reels_session=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
    me = api.get("/api/auth/me").json()
    assert me["email"] == "ada@example.com" and me["role"] == "owner" and me["via"] == "session"


def test_signup_rules(api, signed_up):
    signed_up("taken@example.com")
    assert api.post("/api/auth/signup", json={"email": "TAKEN@example.com", "password": "another long one"}
                    ).json() == {"error": "email exists"}  # fmt: skip
    short = api.post("/api/auth/signup", json={"email": "x@example.com", "password": "short"})
    assert short.status_code == 400 and "at least" in short.json()["error"]
    bad = api.post("/api/auth/signup", json={"email": "not-an-email", "password": "a long password!"})
    assert bad.status_code == 400 and "email" in bad.json()["error"]


def test_passwords_are_stored_as_argon2_and_login_checks_them(api, api_app, signed_up):
    signed_up("grace@example.com", password="hopper hopper 1906")
    with api_app.state.session_factory() as session:
        stored = session.scalar(select(User.password_hash).where(User.email == "grace@example.com"))
    assert stored.startswith("$argon2id$") and "hopper" not in stored
    wrong = api.post("/api/auth/login", json={"email": "grace@example.com", "password": "hopper hopper 1907"})
    assert wrong.status_code == 401 and wrong.json() == {"error": "wrong email or password"}
    unknown = api.post("/api/auth/login", json={"email": "nobody@example.com", "password": "hopper hopper 1906"})
    assert unknown.status_code == 401 and unknown.json() == wrong.json()  # no hint which one was wrong
    ok = api.post("/api/auth/login", json={"email": "GRACE@example.com", "password": "hopper hopper 1906"})
    assert ok.status_code == 200 and "reels_session=" in ok.headers["set-cookie"]


def test_logout_revokes_the_session(signed_up):
    browser = signed_up("lin@example.com")
    token = browser.cookies.get("reels_session")
    assert browser.get("/api/auth/me").status_code == 200
    assert browser.post("/api/auth/logout").status_code == 204
    browser.cookies.set("reels_session", token)  # replaying the old cookie does not work either
    assert browser.get("/api/auth/me").status_code == 401


def test_keys_are_shown_once_hashed_at_rest_and_accepted_both_ways(api, api_app, signed_up):
    browser = signed_up("keys@example.com")
    created = _key(browser, name="ci")
    plaintext = created["key"]
    assert plaintext.startswith(KEY_PREFIX) and len(plaintext) >= len(KEY_PREFIX) + 43  # >= 256 bits
    assert created["scopes"] == list(SCOPES)
    with api_app.state.session_factory() as session:
        row = session.get(ApiKey, created["id"])
        assert row.key_hash == hash_key(plaintext) and plaintext not in (row.key_hash, row.prefix, row.name)
    listed = browser.get("/api/keys").json()
    assert [k["id"] for k in listed] == [created["id"]] and "key" not in listed[0]
    for headers in ({"X-API-Key": plaintext}, {"Authorization": f"Bearer {plaintext}"}):
        response = api.get("/api/jobs", headers=headers)
        assert response.status_code == 200
        assert response.headers["X-ReelFarm-Api-Scopes"] == " ".join(SCOPES)


def test_revoked_or_wrong_key_is_401_at_once_without_falling_back_to_the_cookie(signed_up):
    browser = signed_up("revoke@example.com")
    created = _key(browser)
    assert browser.get("/api/jobs", headers={"X-API-Key": created["key"]}).status_code == 200
    assert browser.delete(f"/api/keys/{created['id']}").json()["revokedAt"] is not None
    # The browser still has a valid cookie: a bad key must not fall back to it.
    response = browser.get("/api/jobs", headers={"X-API-Key": created["key"]})
    assert response.status_code == 401 and response.json() == {"error": "invalid or revoked API key"}
    assert browser.get("/api/jobs", headers={"X-API-Key": KEY_PREFIX + "wrong"}).status_code == 401
    assert browser.get("/api/jobs").status_code == 200  # the cookie alone still works


def test_keys_cannot_manage_keys_members_or_each_other(api, signed_up):
    browser = signed_up("owner@example.com")
    key = _key(browser)["key"]
    headers = {"X-API-Key": key}
    for method, path, body in (("post", "/api/keys", {}), ("get", "/api/keys", None),
                               ("post", "/api/accounts/members", {"email": "x@example.com"}),
                               ("patch", "/api/accounts/members/usr_x", {"role": "member"}),
                               ("delete", "/api/accounts/members/usr_x", None)):  # fmt: skip
        response = api.request(method, path, headers=headers, json=body)
        assert response.status_code == 403, (path, response.text)
        assert "sign in" in response.json()["error"]


def test_key_limit_per_account_comes_from_the_plan(signed_up):
    browser = signed_up("many@example.com")
    keys = [_key(browser, name=f"k{i}") for i in range(20)]  # the business plan (the default) allows 20
    over = browser.post("/api/keys", json={})
    assert over.status_code == 409 and "20 active keys" in over.json()["error"]
    browser.delete(f"/api/keys/{keys[0]['id']}")  # revoking frees a slot
    assert browser.post("/api/keys", json={}).status_code == 201


def test_scoped_key_is_refused_outside_its_scopes(api, signed_up):
    browser = signed_up("scoped@example.com")
    read_only = _key(browser, scopes=["jobs:read"])["key"]
    assert api.get("/api/jobs", headers={"X-API-Key": read_only}).status_code == 200
    upload = api.post("/api/upload", headers={"X-API-Key": read_only}, files={"video": ("a.mp4", b"x", "video/mp4")})
    assert upload.status_code == 403 and "uploads:write" in upload.json()["error"]
    assert upload.headers["X-ReelFarm-Api-Scopes"] == "jobs:read"
    unknown = browser.post("/api/keys", json={"scopes": ["everything"]})
    assert unknown.status_code == 400 and "everything" in unknown.json()["error"]


def test_members_and_roles(api, signed_up):
    owner = signed_up("boss@example.com", account="Studio")
    signed_up("helper@example.com")
    added = owner.post("/api/accounts/members", json={"email": "helper@example.com", "role": "member"})
    assert added.status_code == 201 and added.json()["role"] == "member"
    assert owner.post("/api/accounts/members", json={"email": "helper@example.com", "role": "admin"}).status_code == 409
    studio = owner.get("/api/auth/me").json()["accountId"]
    # The helper signs in to the Studio workspace: a member may list keys but not create them.
    login = api.post("/api/auth/login", json={"email": "helper@example.com", "password": "correct horse battery",
                                               "accountId": studio})  # fmt: skip
    assert login.status_code == 200 and login.json()["role"] == "member"
    assert api.get("/api/keys").status_code == 200
    refused = api.post("/api/keys", json={})
    assert refused.status_code == 403 and "owner or admin" in refused.json()["error"]
    roles = {m["email"]: m["role"] for m in owner.get("/api/accounts/members").json()}
    assert roles == {"boss@example.com": "owner", "helper@example.com": "member"}


def _join(owner, email: str, role: str) -> str:
    """Add the signed-up user `email` to the owner's workspace; their user id."""
    added = owner.post("/api/accounts/members", json={"email": email, "role": role})
    assert added.status_code == 201 and added.json()["status"] == "active", added.text
    return added.json()["userId"]


def _log_in_to(client, email: str, account_id: str) -> None:
    login = client.post("/api/auth/login", json={"email": email, "password": "correct horse battery",
                                                 "accountId": account_id})  # fmt: skip
    assert login.status_code == 200 and login.json()["accountId"] == account_id, login.text


def test_changing_roles_and_who_may(signed_up):
    owner = signed_up("chief@example.com", account="Crew")
    crew, chief = owner.get("/api/auth/me").json()["accountId"], owner.get("/api/auth/me").json()["userId"]
    deputy, hand, outsider = (signed_up(f"{n}@example.com") for n in ("deputy", "hand", "outsider"))
    deputy_id, hand_id = _join(owner, "deputy@example.com", "admin"), _join(owner, "hand@example.com", "member")

    changed = owner.patch(f"/api/accounts/members/{deputy_id}", json={"role": "member"})
    assert changed.status_code == 200
    assert changed.json() == {"userId": deputy_id, "email": "deputy@example.com", "role": "member",
                              "status": "active", "invitationId": None}  # fmt: skip
    assert owner.patch(f"/api/accounts/members/{deputy_id}", json={"role": "admin"}).json()["role"] == "admin"
    bad = owner.patch(f"/api/accounts/members/{hand_id}", json={"role": "boss"})
    assert bad.status_code == 400 and "role must be one of" in bad.json()["error"]

    # An admin manages members and admins, never owners, and makes none.
    _log_in_to(deputy, "deputy@example.com", crew)
    assert deputy.patch(f"/api/accounts/members/{hand_id}", json={"role": "admin"}).json()["role"] == "admin"
    for method, path, body in (("patch", hand_id, {"role": "owner"}), ("patch", chief, {"role": "admin"}),
                               ("delete", chief, None)):  # fmt: skip
        refused = deputy.request(method, f"/api/accounts/members/{path}", json=body)
        assert refused.status_code == 403 and "only an owner" in refused.json()["error"], (method, path)
    # A member manages nobody.
    assert owner.patch(f"/api/accounts/members/{hand_id}", json={"role": "member"}).status_code == 200
    _log_in_to(hand, "hand@example.com", crew)
    for method, body in (("patch", {"role": "member"}), ("delete", None)):
        refused = hand.request(method, f"/api/accounts/members/{deputy_id}", json=body)
        assert refused.status_code == 403 and "owner or admin" in refused.json()["error"], method

    # The last owner can be neither demoted nor removed; with a second owner, either can go.
    for method, body in (("patch", {"role": "admin"}), ("delete", None)):
        last = owner.request(method, f"/api/accounts/members/{chief}", json=body)
        assert last.status_code == 409 and "at least one owner" in last.json()["error"], method
    assert owner.patch(f"/api/accounts/members/{deputy_id}", json={"role": "owner"}).json()["role"] == "owner"
    assert deputy.get("/api/auth/me").json()["role"] == "owner"  # the login reads the role at each request
    assert deputy.patch(f"/api/accounts/members/{chief}", json={"role": "admin"}).json()["role"] == "admin"
    assert owner.patch(f"/api/accounts/members/{deputy_id}", json={"role": "admin"}).status_code == 403
    assert deputy.patch(f"/api/accounts/members/{deputy_id}", json={"role": "member"}).status_code == 409
    roles = {m["email"]: m["role"] for m in owner.get("/api/accounts/members").json()}
    assert roles == {"chief@example.com": "admin", "deputy@example.com": "owner", "hand@example.com": "member"}

    # Someone who is not a member here (another workspace's owner, or no one) is not found.
    stranger = outsider.get("/api/auth/me").json()["userId"]
    for user_id in (stranger, "usr_nobody"):
        for method, body in (("patch", {"role": "member"}), ("delete", None)):
            missing = deputy.request(method, f"/api/accounts/members/{user_id}", json=body)
            assert missing.status_code == 404 and missing.json()["error"] == "member not found", (method, user_id)
    assert outsider.get("/api/auth/me").json()["role"] == "owner"  # untouched in their own workspace


def test_removing_a_member_ends_their_logins_in_that_workspace(api_app, signed_up):
    owner = signed_up("head@example.com", account="Office")
    office = owner.get("/api/auth/me").json()["accountId"]
    staff = signed_up("staff@example.com")
    home = staff.get("/api/auth/me").json()["accountId"]
    staff_id = _join(owner, "staff@example.com", "member")
    _log_in_to(staff, "staff@example.com", office)
    staff_at_home = TestClient(api_app)  # the same user, signed in to their own workspace elsewhere
    _log_in_to(staff_at_home, "staff@example.com", home)

    assert owner.delete(f"/api/accounts/members/{staff_id}").status_code == 204
    gone = staff.get("/api/auth/me")
    assert gone.status_code == 401 and gone.json() == {"error": "not authenticated"}
    assert staff_at_home.get("/api/auth/me").status_code == 200  # their own workspace's login goes on
    assert [m["email"] for m in owner.get("/api/accounts/members").json()] == ["head@example.com"]
    assert owner.delete(f"/api/accounts/members/{staff_id}").status_code == 404
    with api_app.state.session_factory() as session:
        rows = session.scalars(select(UserSession).where(UserSession.user_id == staff_id,
                                                         UserSession.account_id == office)).all()  # fmt: skip
        assert rows and all(row.revoked_at is not None for row in rows)
    # Revoked, not only refused: added back, the old cookie still does not work.
    _join(owner, "staff@example.com", "member")
    assert staff.get("/api/auth/me").status_code == 401

    # An admin may leave; the workspace's last owner may not.
    temp = signed_up("temp@example.com")
    temp_id = _join(owner, "temp@example.com", "admin")
    _log_in_to(temp, "temp@example.com", office)
    assert temp.delete(f"/api/accounts/members/{temp_id}").status_code == 204
    assert temp.get("/api/auth/me").status_code == 401
    head = owner.get("/api/auth/me").json()["userId"]
    last = owner.delete(f"/api/accounts/members/{head}")
    assert last.status_code == 409 and "at least one owner" in last.json()["error"]
    staff_at_home.close()


def test_billing_plans_are_public(api):
    response = api.get("/api/billing/plans")
    assert response.status_code == 200
    plans = {p["id"]: p for p in response.json()["plans"]}
    assert plans["business"]["api_keys"] == 20 and plans["free"]["api_access"] is False


def test_unauthenticated_requests_are_401_json(api):
    for path in ("/api/jobs", "/api/keys", "/api/auth/me", "/api/clips/job_x"):
        response = api.get(path)
        assert response.status_code == 401 and response.json() == {"error": "not authenticated"}
