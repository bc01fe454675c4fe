"""`reelfarm`: run the embedded stack, its parts, one-shot renders, and key management."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path

import click
from pydantic import ValidationError

from reelfarm import cli_remote
from reelfarm.cli_options import CLI_DEFAULTS, option_flags, validated_options
from reelfarm.settings import load_settings
from reelfarm.stop_signals import StopSignals


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")


verbose_option = click.option("--verbose", "-v", is_flag=True,
                              help="Also show Ray's and gRPC's own start-up logs and warnings.")


def _quiet_unless(verbose: bool) -> None:
    """Keep Ray's and gRPC's start-up noise (node IP discovery, fork handlers, token auth, usage
    stats) off a newcomer's terminal; set before either is imported, their processes inherit it."""
    if not verbose:
        from reelfarm.quiet import quiet_env

        quiet_env()


data_dir_option = click.option("--data-dir", type=click.Path(path_type=Path), default=None,
                               help="Folder for the SQLite database and local storage [./reelfarm-data].")


def storage_options(func):
    """--data-dir and the storage flags, the same on every long-running command (`serve`, `api`,
    `scheduler`, `node`); each falls back to its REELFARM_* variable. S3 credentials are read from
    the environment only (REELFARM_S3_ACCESS_KEY_ID/_SECRET_ACCESS_KEY, else boto3's chain)."""
    for decorator in reversed([
        data_dir_option,
        click.option("--storage-url", default=None,
                     help="file:///path or s3://bucket/prefix [REELFARM_STORAGE_URL; DATA_DIR/storage]."),
        click.option("--s3-endpoint-url", default=None, help="S3-compatible endpoint [REELFARM_S3_ENDPOINT_URL]."),
        click.option("--s3-region", default=None, help="S3 region [REELFARM_S3_REGION; us-east-1]."),
    ]):
        func = decorator(func)
    return func


database_option = click.option("--database-url", default=None,
                               help="SQLAlchemy URL [REELFARM_DATABASE_URL; SQLite in DATA_DIR].")


def _load(**overrides):
    """load_settings, with a bad setting (a placeholder secret in prod, a lone TLS key...) a clean error."""
    try:
        return load_settings(**overrides)
    except ValidationError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(epilog=cli_remote.EXIT_CODES_HELP)
def main() -> None:
    """ReelFarm: long videos in, face-tracked captioned short clips out.

    Local commands (serve, render, keys create --account, ...) work on this machine; the remote
    ones (login, upload, jobs, clips, keys, campaigns) talk to a server: REELFARM_URL and
    REELFARM_API_KEY, or the login `reelfarm login` saves."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@storage_options
@database_option
@click.option("--public-url", default=None, help="The API's address as clients reach it [REELFARM_PUBLIC_URL].")
@click.option("--nodes", default=1, show_default=True, help="Render node actors to start on local Ray.")
@verbose_option
def serve(host: str, port: int, nodes: int, verbose: bool, **settings_flags) -> None:
    """API + scheduler + local Ray render nodes, on SQLite and a local folder."""
    _quiet_unless(verbose)
    from reelfarm.embedded import EmbeddedStack

    _setup_logging()
    stack = EmbeddedStack(_load(**settings_flags), nodes=nodes, host=host, port=port,
                          ray_log_to_driver=verbose, verbose=verbose).start()
    stop_signals = StopSignals()  # before the line that tells a supervisor it may signal us
    click.echo(f"ReelFarm API on {stack.base_url} (scheduler {stack.scheduler.address}, {nodes} node(s)). "
               "Ctrl-C stops.")
    try:
        stop_signals.wait()
    finally:
        stack.stop()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@storage_options
@database_option
@click.option("--public-url", default=None, help="The API's address as clients reach it [REELFARM_PUBLIC_URL].")
@click.option("--redis-url", default=None, help="Redis for shared rate limits [REELFARM_REDIS_URL].")
def api(host: str, port: int, **settings_flags) -> None:
    """The API alone (a separate `reelfarm scheduler` polls the database for its jobs)."""
    from control_plane.main import create_app, run_api_server
    from reelfarm.migrate import open_database

    _setup_logging()
    settings = _load(**settings_flags)
    _, session_factory = open_database(settings)
    run_api_server(create_app(settings, session_factory=session_factory), host=host, port=port)


@main.command()
@data_dir_option
@database_option
def migrate(**settings_flags) -> None:
    """Upgrade the database to the newest schema (Alembic head) and exit (the Helm chart's hook)."""
    from reelfarm.database import make_engine
    from reelfarm.migrate import upgrade

    _setup_logging()
    settings = _load(**settings_flags)
    engine = make_engine(settings.resolved_database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    click.echo("database schema is current")


@main.command()
@data_dir_option
@click.option("--public-url", default=None,
              help="The API's address as the agent reaches it, for download URLs [REELFARM_PUBLIC_URL].")
def mcp(data_dir: Path | None, public_url: str | None) -> None:
    """MCP server over stdio for agents: the approved assets of REELFARM_API_KEY's account."""
    from control_plane.agents.mcp_server import run_stdio

    # Logs go to stderr (basicConfig's default): stdout carries only MCP messages.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    run_stdio(load_settings(data_dir=data_dir, public_url=public_url))


@main.command()
@click.option("--listen", default=None, help="gRPC address to serve SchedulerService on [REELFARM_SCHEDULER_ADDRESS].")
@storage_options
@database_option
def scheduler(listen: str | None, **settings_flags) -> None:
    """The scheduler alone: plans jobs from the database and dispatches them to nodes."""
    from reelfarm.migrate import open_database
    from scheduler.server import SchedulerServer

    _setup_logging()
    settings = _load(**settings_flags)
    _, session_factory = open_database(settings)
    server = SchedulerServer(settings, listen=listen, session_factory=session_factory).start()
    stop_signals = StopSignals()
    click.echo(f"scheduler serving on {server.address}. Ctrl-C stops.")
    try:
        stop_signals.wait()
    finally:
        server.stop()


@main.command()
@click.option("--scheduler", "scheduler_address", default=None,
              help="Scheduler gRPC address [REELFARM_SCHEDULER_ADDRESS].")
@click.option("--ray-address", default=None, help="Ray cluster to join [REELFARM_RAY_ADDRESS; auto].")
@click.option("--count", default=1, show_default=True, help="Render node actors to start.")
@click.option("--slots", "node_max_concurrent_tasks", type=click.IntRange(1), default=None,
              help="Tasks each node runs at once [REELFARM_NODE_MAX_CONCURRENT_TASKS; 1].")
@click.option("--placement", "node_placement", type=click.Choice(["auto", "gpu", "render_slot", "cpu"]),
              default=None, help="What each node actor reserves on the Ray cluster [REELFARM_NODE_PLACEMENT; auto: "
                                 "a GPU, else a render_slot where the cluster has them, else a CPU].")
@storage_options
def node(count: int, **settings_flags) -> None:
    """Join an existing Ray cluster and start render node actors there (a plain `ray start` cluster
    will do: no custom resources needed). Ray's token: RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH, as for `ray start`."""
    import ray

    from render_nodes.actor import start_render_nodes

    _setup_logging()
    settings = _load(**settings_flags)
    ray.init(address=settings.ray_address or "auto")
    handles = start_render_nodes(settings, settings.scheduler_address, count, on_this_ray_node=True)
    stop_signals = StopSignals()  # after ray.init, which sets a SIGTERM handler of its own
    click.echo(f"{len(handles)} render node(s) running. Ctrl-C stops.")
    try:
        stop_signals.wait()
    finally:
        for handle in handles:
            ray.kill(handle, no_restart=True)


@main.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--seconds", default=12.0, show_default=True)
@click.option("--size", default="1280x720", show_default=True)
def sample(path: Path, seconds: float, size: str) -> None:
    """Generate a synthetic sample video (ffmpeg test pattern + tone) to try ReelFarm on."""
    from reelfarm.samples import make_sample_video

    make_sample_video(path, seconds=seconds, size=size, preset="veryfast")
    click.echo(str(path))


@main.group(cls=cli_remote.DefaultGroup)
def keys() -> None:
    """API keys: on the server you are logged in to (list, create NAME, revoke), or in this machine's
    database (create --account)."""


def default_owner_email(account_name: str) -> str:
    """The owner login made for a workspace created here without --owner."""
    slug = "".join(c if c.isalnum() else "-" for c in account_name.lower()).strip("-") or "workspace"
    return f"owner@{slug[:60]}.localhost"


def _report_owner(email: str, account: str, password: str | None) -> None:
    if password is not None:
        click.echo(f"{email} owns {account}; sign in with password: {password}", err=True)
    else:
        click.echo(f"{email} owns {account} (an existing user: their password is unchanged)", err=True)


@keys.command("create")
@click.argument("key_name", metavar="[NAME]", required=False)
@click.option("--account", default=None,
              help="Local: make the key in this machine's database (--data-dir), for this account (created on the "
                   "default plan if needed). Without it the key is made on the server, by `reelfarm login`'s session.")
@click.option("--name", default="", help="A label for the key.")
@click.option("--scope", "scopes", multiple=True, help="Remote: a scope of the key (repeat; default: all).")
@cli_remote.json_option
@cli_remote.connection_options
@click.option("--owner", "owner_email", default=None,
              help="Email of the account's owner (made if needed): who signs in to review its batches.")
@click.option("--owner-password", envvar="REELFARM_OWNER_PASSWORD", default=None,
              help="Password of a new owner (default: generated and printed on stderr).")
@data_dir_option
def keys_create(key_name: str | None, account: str | None, name: str, scopes: tuple[str, ...], as_json: bool,
                url: str | None, api_key: str | None, owner_email: str | None, owner_password: str | None,
                data_dir: Path | None) -> None:
    """Create an API key and print its plaintext (shown once; only its hash is stored): on the server
    `reelfarm login --email` signed in to, or with --account in this machine's database.

    Refused, like the /keys page, when the account's plan has no API access or it holds
    the plan's number of active keys."""
    if account is None:
        cli_remote.create_key(name=key_name or name, scopes=scopes, as_json=as_json, url=url, api_key=api_key)
        return
    from control_plane.accounts import service as accounts
    from control_plane.errors import ApiError
    from reelfarm.database import session_scope
    from reelfarm.migrate import open_database

    settings = load_settings(data_dir=data_dir)
    plans = _plan_book(settings)
    _, session_factory = open_database(settings)
    try:
        with session_scope(session_factory) as session:
            workspace = accounts.get_or_create_account(session=session, name=account, plan=plans.default_plan)
            _, plaintext = accounts.issue_account_key(session=session, account=workspace, name=name, scopes=None,
                                                      plans=plans)  # fmt: skip
            # Every workspace has an owner who can sign in (to approve its batches): --owner, or
            # a login made for it the first time.
            if owner_email is None and not accounts.has_owner(session=session, account=workspace):
                owner_email = default_owner_email(workspace.name)
            password = None
            if owner_email:
                password = accounts.make_owner(session=session, account=workspace, email=owner_email,
                                               password=owner_password)  # fmt: skip
    except ApiError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(plaintext)
    if owner_email:
        _report_owner(owner_email.strip().lower(), account, password)


def _plan_book(settings):
    """The plans in force (REELFARM_PLANS_FILE over the built-in ones); a bad file is a clean error."""
    from control_plane.billing.plans import PlanBook, PlansFileError

    try:
        return PlanBook.from_settings(settings)
    except PlansFileError as exc:
        raise click.ClickException(str(exc)) from None


@main.group("accounts")
def accounts_group() -> None:
    """Accounts and their plans."""


@accounts_group.command("plan")
@click.argument("account")
@click.argument("plan")
@data_dir_option
def accounts_plan(account: str, plan: str, data_dir: Path | None) -> None:
    """Move ACCOUNT (its id or its name) to PLAN (a plan id: free, starter, growth, scale, ...)."""
    from control_plane.accounts import service as accounts
    from control_plane.errors import ApiError
    from reelfarm.database import session_scope
    from reelfarm.migrate import open_database

    settings = load_settings(data_dir=data_dir)
    plans = _plan_book(settings)
    _, session_factory = open_database(settings)
    try:
        with session_scope(session_factory) as session:
            found = accounts.find_account(session=session, id_or_name=account)
            before = found.plan
            accounts.change_plan(session=session, account=found, plan_id=plan, plans=plans)
            moved = f"{found.name} ({found.id}): {before} -> {plan}"
    except ApiError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(moved)


@accounts_group.command("owner")
@click.argument("account")
@click.argument("email")
@click.option("--password", envvar="REELFARM_OWNER_PASSWORD", default=None,
              help="Password of a new user (default: generated and printed on stderr).")
@data_dir_option
def accounts_owner(account: str, email: str, password: str | None, data_dir: Path | None) -> None:
    """Make EMAIL (a new or existing user) an owner of ACCOUNT (its id or name), who can then sign in
    and approve its batches."""
    from control_plane.accounts import service as accounts
    from control_plane.errors import ApiError
    from reelfarm.database import session_scope
    from reelfarm.migrate import open_database

    settings = load_settings(data_dir=data_dir)
    _, session_factory = open_database(settings)
    try:
        with session_scope(session_factory) as session:
            found = accounts.find_account(session=session, id_or_name=account)
            name = found.name
            created = accounts.make_owner(session=session, account=found, email=email, password=password)
    except ApiError as exc:
        raise click.ClickException(exc.message) from None
    _report_owner(email.strip().lower(), name, created)


@main.group()
def webhooks() -> None:
    """Signed webhooks."""


@webhooks.command("secret")
@click.argument("account")
@data_dir_option
def webhooks_secret(account: str, data_dir: Path | None) -> None:
    """Print ACCOUNT's webhook signing secret (made on first need)."""
    from sqlalchemy import select

    from control_plane.webhooks import service as webhook_service
    from reelfarm.database import session_scope
    from reelfarm.migrate import open_database
    from reelfarm.models.accounts import Account

    _, session_factory = open_database(load_settings(data_dir=data_dir))
    with session_scope(session_factory) as session:
        account_id = session.scalar(select(Account.id).where(Account.name == account))
        if account_id is None:
            raise click.ClickException(f"no account named {account!r}")
        click.echo(webhook_service.account_secret(session=session, account_id=account_id))


@main.command()
@click.argument("input_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@option_flags(defaults=CLI_DEFAULTS)
@click.option("--output-height", type=int, default=None, help="Output height, e.g. 1280 for 720x1280 [standard].")
@click.option("--encoder", type=click.Choice(["auto", "nvenc", "x264"]), default=None)
@click.option("--preset", "x264_preset", default=None, help="x264 preset [veryfast].")
@click.option("--nodes", default=1, show_default=True)
@click.option("--ray/--no-ray", "use_ray", default=False, show_default=True,
              help="Run the render nodes as actors of a local Ray (as `serve` does) rather than as plain "
                   "child processes; Ray's start and stop add ~5 s.")
@verbose_option
@data_dir_option
def render(input_path: Path, out_dir: Path, output_height, encoder, x264_preset, nodes: int, use_ray: bool,
           verbose: bool, data_dir: Path | None, **options) -> None:
    """Render INPUT through the embedded stack (same API, same scheduler) into --out."""
    _quiet_unless(verbose)
    options = validated_options(options)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="reelfarm-render-") as tmp:
        # No scheduler /metrics server: nobody scrapes a one-shot render, and its stop waits out a 0.5 s poll.
        settings = load_settings(data_dir=data_dir or Path(tmp), output_height=output_height, encoder=encoder,
                                 x264_preset=x264_preset, scheduler_metrics_port=0)  # fmt: skip
        from reelfarm.node_process import NodeProcess

        # The node processes start first: their imports, detector load and encoder probe run on
        # another core while this process imports and starts the API and scheduler.
        early_nodes = [] if use_ray else [NodeProcess(i, settings, verbose=verbose) for i in range(nodes)]
        try:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            from control_plane.accounts import service as accounts
            from control_plane.errors import ApiError
            from reelfarm.client import ApiFailure, ReelFarmClient
            from reelfarm.database import session_scope, utcnow
            from reelfarm.embedded import EmbeddedStack
            from reelfarm.models.accounts import ApiKey
        except BaseException:
            for node in early_nodes:
                node.stop()
            raise
        with EmbeddedStack(settings, nodes=nodes, port=0, ray_log_to_driver=verbose, use_ray=use_ray,
                           verbose=verbose, node_processes=early_nodes, deliver_webhooks=False) as stack:
            # A key of the "local" account on the default plan, like any other (its plan's
            # limits apply), revoked when the render ends.
            plans = stack.app.state.plans
            try:
                with session_scope(stack.session_factory) as session:
                    local = accounts.get_or_create_account(session=session, name="local", plan=plans.default_plan)
                    key_row, key = accounts.issue_account_key(session=session, account=local, name="reelfarm render",
                                                              scopes=None, plans=plans)  # fmt: skip
                    key_id = key_row.id
            except ApiError as exc:
                click.echo(f"error: {exc.message}", err=True)
                sys.exit(1)
            client = ReelFarmClient(stack.base_url, key)
            try:
                job_id = client.upload(input_path, options)["jobId"]
                with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                              TextColumn("{task.percentage:>5.1f}%"), TimeElapsedColumn()) as bar:
                    task = bar.add_task("queued", total=100)

                    def show(job: dict) -> None:
                        stage = job["current_stage"]
                        bar.update(task, completed=job["progress_percent"],
                                   description=job["status"] + (f" / {stage}" if stage else ""))

                    # Server-sent events: each change as the scheduler commits it, and no polling
                    # taking CPU from the render (bench/startup.py).
                    job = client.follow(job_id, on_update=show)
                if job["status"] != "completed":
                    raise ApiFailure(f"job {job['status']}: {job.get('error')}")
                manifest = client.download_all(job_id, out_dir)
            except ApiFailure as exc:
                click.echo(f"error: {exc}", err=True)
                sys.exit(1)
            finally:
                client.close()
                with session_scope(stack.session_factory) as session:
                    session.get(ApiKey, key_id).revoked_at = utcnow()
    for clip in manifest["clips"]:
        click.echo(f"{out_dir / clip['files'][0]['filename']}  {clip['width']}x{clip['height']}  "
                   f"{clip['duration']:.2f}s  encoder={clip['encoder']}")
    click.echo(f"{out_dir / 'manifest.json'}")
    # Everything is written, committed and stopped: skip the interpreter's teardown of NumPy, PyAV,
    # gRPC and the face detector (~0.5 s of a one-shot render, bench/startup.py).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


cli_remote.register(main, keys)

if __name__ == "__main__":
    main()
