"""Sign-ups are rate limited per client IP, on the API and the dashboard's form alike: each one
hashes a password and makes a workspace."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from control_plane.accounts.login_limits import SIGNUP_PER_IP
from reelfarm.database import session_scope
from reelfarm.models.accounts import User

PASSWORD = "correct horse battery"


def test_sign_ups_are_limited_per_ip_across_api_and_form(api, api_app):
    for n in range(SIGNUP_PER_IP - 1):
        assert api.post("/api/auth/signup", json={"email": f"u{n}@example.com", "password": PASSWORD}).status_code == 201
    # Requests refused before any work (a malformed address) are not counted.
    for _ in range(3):
        assert api.post("/api/auth/signup", json={"email": "not an address", "password": PASSWORD}).status_code == 400

    browser = TestClient(api_app, follow_redirects=False)
    page = browser.get("/dashboard/signup")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    last = browser.post("/dashboard/signup", data={"csrf_token": token, "email": "last@example.com",
                                                   "password": PASSWORD, "account_name": "Last"})  # fmt: skip
    assert last.status_code == 303, last.text  # the limit's last one, through the form

    refused = api.post("/api/auth/signup", json={"email": "over@example.com", "password": PASSWORD})
    assert refused.status_code == 429 and "too many sign-ups" in refused.json()["error"]
    assert int(refused.headers["retry-after"]) >= 1
    over = browser.post("/dashboard/signup", data={"csrf_token": token, "email": "over2@example.com",
                                                   "password": PASSWORD})  # fmt: skip
    assert over.status_code == 429 and "too many sign-ups" in over.text
    with session_scope(api_app.state.session_factory) as session:
        emails = {u.email for u in session.query(User)}
    assert "last@example.com" in emails and not {"over@example.com", "over2@example.com"} & emails
