"""schemathesis against the generated OpenAPI, authenticated with a real key: no endpoint
answers 5xx, and every response matches its documented schema.

Bounded (REELFARM_FUZZ_EXAMPLES examples per operation, default 25) so it fits in CI.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from control_plane.accounts import service as accounts
from reelfarm.database import session_scope

EXAMPLES = int(os.environ.get("REELFARM_FUZZ_EXAMPLES", "25"))


@pytest.fixture
def api_key(api_app):
    """api_key(name): a key of its own account (each operation is fuzzed as its own client)."""

    def make(name: str = "fuzz") -> str:
        with session_scope(api_app.state.session_factory) as session:
            owner = accounts.get_or_create_account(session=session, name=name, plan=api_app.state.plans.default_plan)
            return accounts.create_api_key(session=session, account=owner)

    return make


def as_client(app, host: str, statuses: list[int]):
    """The app as reached from `host` (the ASGI scope's client), noting every response status.

    Each operation is fuzzed from its own address with its own account's key, so its
    examples stay inside the real /api/v1 rate limits (control_plane/limits/) and reach the
    routes rather than the limiter's 429."""

    async def asgi(scope, receive, send):
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def noting(message):
            if message["type"] == "http.response.start":
                statuses.append(message["status"])
            await send(message)

        await app({**scope, "client": (host, 50000)}, receive, noting)

    return asgi


def fuzzer(operation, client, key: str):
    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    def run(case):
        case.call_and_validate(app=client, headers={"X-API-Key": key},
                               checks=[not_a_server_error, response_schema_conformance])  # fmt: skip

    return run


def test_no_server_errors_and_responses_match_the_schema(api_app, api_key):
    schema = schemathesis.openapi.from_asgi("/openapi.json", api_app)
    failures: dict[str, str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25  # every family is in the document

    statuses: list[int] = []
    for n, operation in enumerate(operations):
        client = as_client(api_app, f"198.51.100.{n % 250 + 1}", statuses)
        try:
            fuzzer(operation, client, api_key(f"fuzz-{n}"))()
        except Exception as exc:  # collect every operation's failure, then report them together
            failures[operation.label] = str(exc)[:2000]
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
    assert statuses and 429 not in statuses  # the examples reached the routes, not the rate limiter
