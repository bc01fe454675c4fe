"""The `reelfarm` console script, run as users run it: a subprocess per command."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import ffprobe_json
from sqlalchemy import select

from control_plane.accounts.service import hash_key
from reelfarm.database import make_engine, make_session_factory
from reelfarm.models.accounts import Account, ApiKey
from reelfarm.settings import Settings

REELFARM = str(Path(sys.executable).with_name("reelfarm"))


def run_cli(*args: str, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", **(env or {})}
    return subprocess.run([REELFARM, *args], check=False, capture_output=True, text=True, timeout=timeout, env=env)


def test_keys_create_prints_a_key_once_and_stores_only_its_hash(tmp_path):
    first = run_cli("keys", "create", "--account", "acme", "--data-dir", str(tmp_path))
    second = run_cli("keys", "create", "--account", "acme", "--data-dir", str(tmp_path))
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    key1, key2 = first.stdout.strip(), second.stdout.strip()
    assert key1.startswith("rf_live_") and key2.startswith("rf_live_") and key1 != key2

    sessions = make_session_factory(make_engine(Settings(data_dir=tmp_path).resolved_database_url))
    with sessions() as s:
        accounts = s.scalars(select(Account)).all()
        keys = s.scalars(select(ApiKey)).all()
        assert [a.name for a in accounts] == ["acme"]  # the second call reused the account
        stored = {k.key_hash for k in keys}
        assert stored == {hash_key(key1), hash_key(key2)}
        # The plaintext is nowhere in the database file.
    assert key1.encode() not in (tmp_path / "reelfarm.db").read_bytes()


def _accounts(data_dir: Path) -> dict[str, Account]:
    sessions = make_session_factory(make_engine(Settings(data_dir=data_dir).resolved_database_url))
    with sessions() as s:
        return {a.name: a for a in s.scalars(select(Account))}


def _active_keys(data_dir: Path, account: str) -> int:
    sessions = make_session_factory(make_engine(Settings(data_dir=data_dir).resolved_database_url))
    with sessions() as s:
        return len(s.scalars(select(ApiKey).join(Account, Account.id == ApiKey.account_id)
                             .where(Account.name == account, ApiKey.revoked_at.is_(None))).all())  # fmt: skip


def test_accounts_plan_moves_an_account_and_keys_create_follows_its_plan(tmp_path):
    data = ["--data-dir", str(tmp_path)]
    assert run_cli("keys", "create", "--account", "acme", *data).returncode == 0
    account = _accounts(tmp_path)["acme"]
    assert account.plan == "business"  # REELFARM_DEFAULT_PLAN's default

    moved = run_cli("accounts", "plan", "acme", "free", *data)
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.strip() == f"acme ({account.id}): business -> free"
    assert _accounts(tmp_path)["acme"].plan == "free"
    refused = run_cli("keys", "create", "--account", "acme", *data)  # as POST /api/keys refuses it
    assert refused.returncode == 1 and refused.stdout == ""
    assert "the Free plan does not include API access" in refused.stderr
    assert _active_keys(tmp_path, "acme") == 1

    by_id = run_cli("accounts", "plan", account.id, "growth", *data)  # ACCOUNT may be the id
    assert by_id.returncode == 0, by_id.stderr
    assert _accounts(tmp_path)["acme"].plan == "growth"
    assert run_cli("keys", "create", "--account", "acme", *data).returncode == 0  # growth allows 2
    over = run_cli("keys", "create", "--account", "acme", *data)
    assert over.returncode == 1 and "key limit reached: the Growth plan allows 2 active keys" in over.stderr
    assert _active_keys(tmp_path, "acme") == 2

    unknown_plan = run_cli("accounts", "plan", "acme", "platinum", *data)
    assert unknown_plan.returncode != 0 and "unknown plan 'platinum'" in unknown_plan.stderr
    unknown_account = run_cli("accounts", "plan", "nobody", "growth", *data)
    assert unknown_account.returncode != 0 and "no account with id or name 'nobody'" in unknown_account.stderr
    assert _accounts(tmp_path)["acme"].plan == "growth"


def test_the_cli_reads_the_plans_file_and_the_default_plan(tmp_path):
    plans = tmp_path / "plans.toml"
    plans.write_text("[plans.solo]\nlanguages_per_campaign = 1\napi_rate_per_minute = 5\napi_keys = 1\n"
                     "api_access = true\n")
    env = {"REELFARM_PLANS_FILE": str(plans), "REELFARM_DEFAULT_PLAN": "solo"}
    data = ["--data-dir", str(tmp_path / "data")]
    assert run_cli("keys", "create", "--account", "solo-co", *data, env=env).returncode == 0
    assert _accounts(tmp_path / "data")["solo-co"].plan == "solo"  # new accounts get the default plan
    over = run_cli("keys", "create", "--account", "solo-co", *data, env=env)
    assert over.returncode == 1 and "allows 1 active keys" in over.stderr

    plans.write_text("[plans.solo]\napi_keys = 1\n")
    broken = run_cli("keys", "create", "--account", "solo-co", *data, env=env)
    assert broken.returncode == 1 and "Traceback" not in broken.stderr
    assert f"{plans}: [plans.solo]: missing languages_per_campaign" in broken.stderr


def test_sample_then_render_writes_clips_posters_and_manifest(tmp_path):
    video, out = tmp_path / "demo.mp4", tmp_path / "out"
    made = run_cli("sample", str(video), "--seconds", "4", "--size", "640x360")
    assert made.returncode == 0, made.stderr

    rendered = run_cli("render", str(video), "--out", str(out), "--aspect", "1:1", "--output-height", "240",
                       "--preset", "ultrafast", "--data-dir", str(tmp_path / "data"))
    assert rendered.returncode == 0, rendered.stderr

    manifest = json.loads((out / "manifest.json").read_text())
    [clip] = manifest["clips"]
    assert (clip["width"], clip["height"]) == (240, 240)
    for entry in clip["files"]:
        data = (out / entry["filename"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data) == entry["size_bytes"]
    stream = next(s for s in ffprobe_json(out / "clip_01.mp4")["streams"] if s["codec_type"] == "video")
    assert (stream["width"], stream["height"]) == (240, 240)
    assert (out / "clip_01.jpg").read_bytes()[:2] == b"\xff\xd8"  # a JPEG poster
    assert "clip_01.mp4" in rendered.stdout
    assert _accounts(tmp_path / "data")["local"].plan == "business"
    assert _active_keys(tmp_path / "data", "local") == 0  # render's own key is revoked when it ends


def test_render_of_a_file_that_is_not_a_video_fails_with_the_reason(tmp_path):
    bogus = tmp_path / "notes.mp4"
    bogus.write_text("not a video at all")
    result = run_cli("render", str(bogus), "--out", str(tmp_path / "out"), "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 1
    assert "not a decodable video" in result.stderr
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_a_workspace_made_from_the_cli_has_an_owner_who_can_sign_in(tmp_path):
    """Batches are approved by a signed-in owner or admin: `keys create --owner` gives the workspace one."""
    from fastapi.testclient import TestClient

    from control_plane.main import create_app

    made = run_cli("keys", "create", "--account", "acme", "--owner", "Boss@Example.com", "--data-dir", str(tmp_path))
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip().startswith("rf_live_")  # stdout stays the key alone
    password = made.stderr.strip().rsplit("password: ", 1)[1]
    # An existing workspace gets another owner; an existing user keeps their password.
    added = run_cli("accounts", "owner", "acme", "second@example.com", "--password", "correct horse battery",
                    "--data-dir", str(tmp_path))  # fmt: skip
    assert added.returncode == 0, added.stderr
    again = run_cli("accounts", "owner", "acme", "boss@example.com", "--data-dir", str(tmp_path))
    assert again.returncode == 0 and "unchanged" in again.stderr, again.stderr
    assert run_cli("accounts", "owner", "nope", "x@example.com", "--data-dir", str(tmp_path)).returncode != 0

    with TestClient(create_app(Settings(environment="test", data_dir=tmp_path))) as api:
        for email, secret in (("boss@example.com", password), ("second@example.com", "correct horse battery")):
            me = api.post("/api/auth/login", json={"email": email, "password": secret})
            assert me.status_code == 200, me.text
            assert (me.json()["accountName"], me.json()["role"]) == ("acme", "owner")
        # The owner's review is accepted by the batches API (an unknown batch: 404, not 403 for the role).
        assert api.post("/api/v1/batches/batch_missing/approve").status_code == 404


def test_a_workspace_made_without_owner_gets_an_owner_login_once(tmp_path):
    from fastapi.testclient import TestClient

    from control_plane.main import create_app

    made = run_cli("keys", "create", "--account", "Demo Team", "--data-dir", str(tmp_path))
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip().startswith("rf_live_")
    assert "owner@demo-team.localhost owns Demo Team" in made.stderr, made.stderr
    password = made.stderr.strip().rsplit("password: ", 1)[1]
    # A second key for the same workspace makes no second login.
    again = run_cli("keys", "create", "--account", "Demo Team", "--data-dir", str(tmp_path))
    assert again.returncode == 0 and again.stderr.strip() == "", again.stderr
    with TestClient(create_app(Settings(environment="test", data_dir=tmp_path))) as api:
        me = api.post("/api/auth/login", json={"email": "owner@demo-team.localhost", "password": password})
        assert me.status_code == 200 and me.json()["role"] == "owner", me.text


STORAGE_FLAGS = ["--data-dir", "--storage-url", "--s3-endpoint-url", "--s3-region"]


def test_every_service_command_takes_the_same_data_dir_and_storage_flags():
    for command, extra in (("node", ["--ray-address", "--scheduler", "--slots", "--placement"]),
                           ("api", ["--database-url", "--public-url", "--redis-url"]),
                           ("scheduler", ["--database-url", "--listen"]),
                           ("serve", ["--database-url", "--public-url"])):
        shown = run_cli(command, "--help", timeout=60)
        assert shown.returncode == 0, shown.stderr
        for flag in STORAGE_FLAGS + extra:
            assert f"{flag} " in shown.stdout, f"reelfarm {command} --help lacks {flag}"
    # Defaults come from the settings, not from the flags: the help names the variable.
    assert "[REELFARM_RAY_ADDRESS; auto]" in " ".join(run_cli("node", "--help", timeout=60).stdout.split())


def _scheduler_until_serving(env: dict[str, str], *args: str) -> str:
    """Start `reelfarm scheduler`, wait for its "serving" line, stop it (SIGTERM); its output."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "REELFARM_SCHEDULER_METRICS_PORT": "0", **env}
    proc = subprocess.Popen([REELFARM, "scheduler", "--listen", "127.0.0.1:0", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)  # fmt: skip
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if "scheduler serving on" in line:
                break
    finally:
        proc.terminate()
        proc.wait(30)
    assert any("scheduler serving on" in line for line in lines), "".join(lines)
    return "".join(lines)


def test_service_flags_fall_back_to_the_environment_and_override_it(tmp_path):
    env_db, flag_db = tmp_path / "from-env.db", tmp_path / "from-flag.db"
    env = {"REELFARM_DATABASE_URL": f"sqlite:///{env_db}", "REELFARM_DATA_DIR": str(tmp_path / "env-data")}
    _scheduler_until_serving(env)
    assert env_db.is_file()  # no flag: REELFARM_DATABASE_URL
    assert (tmp_path / "env-data").is_dir() and not (tmp_path / "env-data" / "reelfarm.db").exists()
    _scheduler_until_serving(env, "--database-url", f"sqlite:///{flag_db}", "--data-dir", str(tmp_path / "flag"))
    assert flag_db.is_file()  # the flag wins over the variable
    assert (tmp_path / "flag").is_dir()


def test_prod_refuses_placeholder_secrets_with_a_clean_error_and_test_allows_them(tmp_path):
    prod = run_cli("scheduler", "--data-dir", str(tmp_path), timeout=60,
                   env={"REELFARM_ENVIRONMENT": "prod", "REELFARM_SECRET_KEY": "changeme"})
    assert prod.returncode == 1 and "Traceback" not in prod.stderr
    assert "REELFARM_SECRET_KEY must be set to a real secret" in prod.stderr
    s3 = run_cli("node", "--data-dir", str(tmp_path), timeout=60,
                 env={"REELFARM_ENVIRONMENT": "prod", "REELFARM_SECRET_KEY": "a-real-one-9f2c",
                      "REELFARM_S3_ACCESS_KEY_ID": "minioadmin", "REELFARM_S3_SECRET_ACCESS_KEY": "minioadmin"})
    assert s3.returncode == 1 and "REELFARM_S3_SECRET_ACCESS_KEY is a placeholder" in s3.stderr
    # "dev" (the default) and "test" (the test suite's) accept the placeholders.
    for environment in ("dev", "test"):
        assert Settings(_env_file=None, environment=environment, s3_access_key_id="minioadmin",
                        s3_secret_access_key="minioadmin").secret_key == "dev-secret-change-me"
