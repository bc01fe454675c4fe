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
    with session_scope(api_app.state.session_factory) as session:
        owner = accounts.get_or_create_account(session=session, name="fuzz")
        return accounts.create_api_key(session=session, account=owner)


def test_no_server_errors_and_responses_match_the_schema(api_app, api_key):
    schema = schemathesis.openapi.from_asgi("/openapi.json", api_app)
    failures: dict[str, str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25  # every family is in the document

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def run(case):
            case.call_and_validate(headers={"X-API-Key": api_key},
                                   checks=[not_a_server_error, response_schema_conformance])  # fmt: skip

        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report them together
            failures[operation.label] = str(exc)[:2000]
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
