"""The remote commands: `reelfarm login/logout/upload/wait/jobs/clips/keys/campaigns` against a ReelFarm
server (REELFARM_URL + REELFARM_API_KEY, or the config file `reelfarm login` writes).

Tables on stdout by default, `--json` for scripts; progress bars on stderr (when it is a
terminal, or with --progress). An error is one line, `error: <the API's message>`, on stderr,
and the exit status says what kind it was (ExitCode); never a traceback.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import sys
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path

import click

from reelfarm.cli_config import URL_ENV, ConfigError, Remote, config_path, read_config, remove_config, write_config
from reelfarm.cli_options import option_flags, pop_options, validated_options


class ExitCode(IntEnum):
    """What a remote command's exit status means (`reelfarm --help`, README "Using the API")."""

    OK = 0
    JOB_FAILED = 1  # `--wait`/`wait`: the job ended failed or cancelled
    USAGE = 2  # a bad flag or argument (click's own)
    API_REFUSED = 3  # the API refused the request (a 4xx: unknown job, bad option, over quota...)
    NOT_AUTHENTICATED = 4  # not configured, or the API said 401/403 (bad, revoked or unscoped key)
    UNREACHABLE = 5  # no answer from the server, or a 5xx after the client's retries
    TIMED_OUT = 6  # `--timeout` passed before the job ended
    INTERRUPTED = 130  # Ctrl-C (as a shell reports SIGINT); a job already started goes on


EXIT_CODES_HELP = "\b\nExit codes of the remote commands (upload, wait, jobs, clips, keys, campaigns, login):\n" + "\n".join(
    f"  {code.value}  {text}" for code, text in [
        (ExitCode.OK, "success"),
        (ExitCode.JOB_FAILED, "the job failed or was cancelled (--wait, wait)"),
        (ExitCode.USAGE, "usage error (a bad flag or argument)"),
        (ExitCode.API_REFUSED, "the API refused the request (4xx; its message is printed)"),
        (ExitCode.NOT_AUTHENTICATED, "not configured, or not authenticated (401/403)"),
        (ExitCode.UNREACHABLE, "server unreachable, or a 5xx after retries"),
        (ExitCode.TIMED_OUT, "timed out waiting for the job (--timeout)"),
        (ExitCode.INTERRUPTED, "interrupted (Ctrl-C); a job already started goes on"),
    ])  # fmt: skip

NOT_CONFIGURED = ("not configured: run `reelfarm login` (or set REELFARM_URL and REELFARM_API_KEY, or pass "
                  "--url and --api-key)")  # fmt: skip
NEEDS_SESSION = ("managing keys needs a login, not an API key: run `reelfarm login --email YOU` first "
                 "(the saved login is used for its server only)")  # fmt: skip


class Failure(click.ClickException):
    """One line on stderr, `error: ...`, and the exit code of its kind."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.exit_code = int(code)

    def show(self, file=None) -> None:
        click.echo(f"error: {self.message}", err=True)


def exit_code_of(exc: Exception) -> ExitCode:
    status = getattr(exc, "status", None)
    if status is None or status >= 500:
        return ExitCode.UNREACHABLE
    if status in (401, 403):
        return ExitCode.NOT_AUTHENTICATED
    return ExitCode.API_REFUSED


def _message(exc: Exception) -> str:
    message = getattr(exc, "message", None) or str(exc)
    status = getattr(exc, "status", None)
    if status is None:
        return message
    return f"{message} (HTTP {status})"


def api_errors(func):
    """Turn the client's errors (and a timeout) into one `error:` line and the ExitCode of their kind."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from reelfarm.client import ReelFarmError

        try:
            return func(*args, **kwargs)
        except ReelFarmError as exc:
            raise Failure(_message(exc), exit_code_of(exc)) from None
        except TimeoutError as exc:
            raise Failure(str(exc) or "timed out", ExitCode.TIMED_OUT) from None
        except ConfigError as exc:
            raise Failure(str(exc), ExitCode.NOT_AUTHENTICATED) from None
        except KeyboardInterrupt:
            raise Failure("interrupted", ExitCode.INTERRUPTED) from None

    return wrapper


# --- connection --------------------------------------------------------------------------------

def connection_options(func):
    """--url and --api-key (over REELFARM_URL / REELFARM_API_KEY, over the saved login)."""
    func = click.option("--api-key", "api_key", default=None, metavar="KEY",
                        help="API key [REELFARM_API_KEY; the saved login's].")(func)  # fmt: skip
    return click.option("--url", "url", default=None, metavar="URL",
                        help="The server [REELFARM_URL; the saved login's].")(func)  # fmt: skip


def client_for(url: str | None, api_key: str | None, *, session: bool = False):
    """A client of the configured server: by API key, or (`session`) by the saved login's session."""
    from reelfarm.client import ReelFarm

    remote = Remote.resolve(url, api_key)
    if not remote.url:
        raise Failure(NOT_CONFIGURED, ExitCode.NOT_AUTHENTICATED)
    if session:
        if not remote.session_token:
            raise Failure(NEEDS_SESSION, ExitCode.NOT_AUTHENTICATED)
        return ReelFarm(remote.url, session_token=remote.session_token)
    if not remote.api_key:
        if remote.session_token:  # a login whose key was not saved: the session does as well
            return ReelFarm(remote.url, session_token=remote.session_token)
        raise Failure(NOT_CONFIGURED, ExitCode.NOT_AUTHENTICATED)
    return ReelFarm(remote.url, api_key=remote.api_key)


def _close(rf) -> None:
    close = getattr(rf, "close", None)
    if close is not None:
        close()


# --- output --------------------------------------------------------------------------------------

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of a table.")
progress_option = click.option("--progress/--no-progress", "progress", default=None,
                               help="Progress bars on stderr [when stderr is a terminal].")


def plain(value):
    """A client model (or a list of them) as JSON-ready data."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def field(obj, *names, default=None):
    """The first of `names` that `obj` (a model or a dict) has and is not None."""
    data = obj if isinstance(obj, dict) else None
    for name in names:
        value = data.get(name) if data is not None else getattr(obj, name, None)
        if value is not None:
            return value
    if data is None and hasattr(obj, "model_dump"):
        return field(obj.model_dump(by_alias=True), *names, default=default)
    return default


def print_json(value) -> None:
    click.echo(json.dumps(plain(value), indent=2, ensure_ascii=False))


def _console(stderr: bool = False):
    from rich.console import Console

    console = Console(stderr=stderr)
    if not console.is_terminal:  # piped: no colour, and wide enough that ids are never cut
        console = Console(stderr=stderr, width=max(console.width, 200), no_color=True, highlight=False)
    return console


def print_table(title: str | None, columns: list[str], rows: list[list]) -> None:
    from rich.table import Table

    table = Table(title=title, box=None, show_edge=False, pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    _console().print(table)


def when(value) -> str:
    """A timestamp (epoch ms, ISO string or datetime) as local time, to the minute."""
    if value in (None, ""):
        return ""
    if isinstance(value, int | float):
        moment = datetime.fromtimestamp(value / 1000 if value > 1e11 else value, tz=UTC)
    elif isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            return str(value)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


def _show_progress(flag: bool | None, quiet: bool = False) -> bool:
    if flag is not None:
        return flag
    return not quiet and sys.stderr.isatty()


def _progress():
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                    DownloadColumn(), TimeElapsedColumn(), console=_console(stderr=True))  # fmt: skip


def _job_progress():
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                    TimeElapsedColumn(), console=_console(stderr=True))  # fmt: skip


# --- jobs ----------------------------------------------------------------------------------------

def job_row(job) -> list:
    progress = field(job, "progress_percent", "progressPercent", default=0.0)
    return [field(job, "id", "job_id", "jobId"), field(job, "original_name", "originalName", "name"),
            field(job, "status"), field(job, "stage", "current_stage") or "", f"{float(progress):.0f}%",
            field(job, "clip_count", "clipCount", default=""), when(field(job, "created_at", "createdAt"))]


JOB_COLUMNS = ["id", "name", "status", "stage", "progress", "clips", "created"]


def wait_for(rf, job_id: str, *, timeout: float | None, progress: bool):
    """Follow the job until it ends (the API's server-sent events); a bar on stderr with `progress`."""
    if not progress:
        return rf.jobs.wait(job_id, timeout=timeout)
    with _job_progress() as bar:
        task = bar.add_task("queued", total=100)

        def show(job) -> None:
            stage = field(job, "current_stage", "stage")
            status = field(job, "status", default="")
            bar.update(task, completed=float(field(job, "progress_percent", "progressPercent", default=0.0)),
                       description=status + (f" / {stage}" if stage else ""))  # fmt: skip

        final = rf.jobs.wait(job_id, timeout=timeout, on_progress=show)
        if field(final, "status") == "completed":
            bar.update(task, completed=100)
    return final


def _timed_out(job_id: str, timeout: float | None) -> Failure:
    return Failure(f"job {job_id} did not finish within {timeout:g} s (`reelfarm wait {job_id}` waits again)",
                   ExitCode.TIMED_OUT)  # fmt: skip


def finish(rf, job_id: str, *, wait: bool, timeout: float | None, progress: bool, as_json: bool, quiet: bool) -> None:
    """Print the job (waiting first with `wait`) and exit with the code its status calls for."""
    if wait:
        try:
            wait_for(rf, job_id, timeout=timeout, progress=progress)
        except TimeoutError:
            raise _timed_out(job_id, timeout) from None
    job = rf.jobs.get(job_id)
    if quiet:
        click.echo(job_id)
    elif as_json:
        print_json(job)
    else:
        print_table(None, JOB_COLUMNS, [job_row(job)])
    status = field(job, "status")
    if wait and status != "completed":
        error = field(job, "error")
        raise Failure(f"job {job_id} {status}" + (f": {error}" if error else ""), ExitCode.JOB_FAILED)


@click.command()
@click.argument("source", metavar="FILE|URL")
@option_flags(server_defaults=True)
@click.option("--wait", "wait", is_flag=True, help="Wait for the job to end; exit 1 if it failed or was cancelled.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None, metavar="S",
              help="With --wait: give up after S seconds (exit 6; the job goes on).")
@click.option("--quiet", "-q", is_flag=True, help="Print only the job id (no table, no progress).")
@json_option
@progress_option
@connection_options
@api_errors
def upload(source: str, wait: bool, timeout: float | None, quiet: bool, as_json: bool, progress: bool | None,
           url: str | None, api_key: str | None, **flags) -> None:
    """Start a job from a video FILE (uploaded) or a URL (the server downloads it).

    The job option flags are those of `reelfarm render`; a flag left out takes the server's
    default. Prints the job (a table, --json, or its id alone with -q)."""
    options = validated_options(pop_options(flags), given_only=True)
    is_url = source.startswith(("http://", "https://"))
    path = Path(source)
    if not is_url and not path.is_file():
        raise click.BadParameter(f"{source}: no such file (or an http(s) URL)", param_hint="FILE|URL")
    show = _show_progress(progress, quiet)
    rf = client_for(url, api_key)
    try:
        if is_url:
            created = rf.uploads.from_url(source, options)
        elif show:
            with _progress() as bar:
                task = bar.add_task(f"upload {path.name}", total=path.stat().st_size)
                created = rf.uploads.upload(path, options,
                                            on_progress=lambda sent, total: bar.update(task, completed=sent,
                                                                                       total=total or None))  # fmt: skip
        else:
            created = rf.uploads.upload(path, options)
        job_id = field(created, "job_id", "jobId", "id")
        finish(rf, job_id, wait=wait, timeout=timeout, progress=show, as_json=as_json, quiet=quiet)
    finally:
        _close(rf)


@click.command("wait")
@click.argument("job_id", metavar="JOB")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None, metavar="S",
              help="Give up after S seconds (exit 6; the job goes on).")
@click.option("--quiet", "-q", is_flag=True, help="Print only the job id.")
@json_option
@progress_option
@connection_options
@api_errors
def wait_command(job_id: str, timeout: float | None, quiet: bool, as_json: bool, progress: bool | None,
                 url: str | None, api_key: str | None) -> None:
    """Wait for JOB to end; exit 0 when it completed, 1 when it failed or was cancelled."""
    rf = client_for(url, api_key)
    try:
        finish(rf, job_id, wait=True, timeout=timeout, progress=_show_progress(progress, quiet), as_json=as_json,
               quiet=quiet)  # fmt: skip
    finally:
        _close(rf)


class DefaultGroup(click.Group):
    """A group that runs `list` when given no subcommand (`reelfarm jobs --json` is `jobs list --json`),
    and `show` when given an id instead of one (`reelfarm jobs JOB` is `jobs show JOB`)."""

    default_command = "list"

    def parse_args(self, ctx, args):
        if not args or (args[0].startswith("-") and args[0] not in self.get_help_option_names(ctx)):
            args = [self.default_command, *args]
        elif not args[0].startswith("-") and args[0] not in self.commands and "show" in self.commands:
            args = ["show", *args]
        return super().parse_args(ctx, args)


@click.group("jobs", cls=DefaultGroup)
def jobs() -> None:
    """Your jobs on the server (`reelfarm jobs` lists them)."""


@jobs.command("list")
@click.option("--limit", type=click.IntRange(min=1), default=None, metavar="N", help="The newest N only.")
@click.option("--status", "status", default=None, help="Only jobs in this status (queued, running, completed...).")
@json_option
@connection_options
@api_errors
def jobs_list(limit: int | None, status: str | None, as_json: bool, url: str | None, api_key: str | None) -> None:
    """The jobs, newest first."""
    rf = client_for(url, api_key)
    try:
        found = list(rf.jobs.list())
    finally:
        _close(rf)
    if status:
        found = [j for j in found if field(j, "status") == status]
    if limit:
        found = found[:limit]
    if as_json:
        print_json(found)
    elif not found:
        click.echo("no jobs")
    else:
        print_table(None, JOB_COLUMNS, [job_row(j) for j in found])


@jobs.command("show")
@click.argument("job_id", metavar="JOB")
@json_option
@connection_options
@api_errors
def jobs_show(job_id: str, as_json: bool, url: str | None, api_key: str | None) -> None:
    """One job: its status, stage, progress and error."""
    rf = client_for(url, api_key)
    try:
        job = rf.jobs.get(job_id)
    finally:
        _close(rf)
    if as_json:
        print_json(job)
        return
    print_table(None, JOB_COLUMNS, [job_row(job)])
    if field(job, "error"):
        click.echo(f"error: {field(job, 'error')}")


@jobs.command("cancel")
@click.argument("job_id", metavar="JOB")
@json_option
@connection_options
@api_errors
def jobs_cancel(job_id: str, as_json: bool, url: str | None, api_key: str | None) -> None:
    """Cancel JOB; its running tasks are stopped on their nodes."""
    rf = client_for(url, api_key)
    try:
        rf.jobs.cancel(job_id)
        job = rf.jobs.get(job_id)
    finally:
        _close(rf)
    if as_json:
        print_json(job)
    else:
        print_table(None, JOB_COLUMNS, [job_row(job)])


# --- clips ---------------------------------------------------------------------------------------

def _clip_title(clip) -> str:
    metadata = field(clip, "metadata", default={}) or {}
    title = metadata.get("title") if isinstance(metadata, dict) else field(metadata, "title")
    return title or f"clip {field(clip, 'index', default='')}"


def _filenames(clip) -> list[str]:
    return [field(f, "filename", "name") for f in field(clip, "files", default=[]) or []]


@click.command()
@click.argument("job_id", metavar="JOB")
@click.option("--download", "download_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              metavar="DIR", help="Download every clip file (and manifest.json) into DIR, each SHA-256 checked.")
@json_option
@progress_option
@connection_options
@api_errors
def clips(job_id: str, download_dir: Path | None, as_json: bool, progress: bool | None, url: str | None,
          api_key: str | None) -> None:
    """The clips of a completed JOB (its manifest); --download fetches their files."""
    rf = client_for(url, api_key)
    try:
        if download_dir is None:
            manifest = rf.clips.manifest(job_id)
        else:  # the download reads the manifest itself: no second request for it
            manifest = _download(rf, job_id, download_dir, _show_progress(progress))
    finally:
        _close(rf)
    found = field(manifest, "clips", default=[]) or []
    if as_json:
        print_json(manifest)
    elif not found:
        click.echo("no clips")
    else:
        rows = []
        for clip in found:
            score = field(clip, "score")
            rows.append([field(clip, "index"), _clip_title(clip), f"{float(field(clip, 'duration', default=0)):.1f}s",
                         "" if score is None else f"{float(score):.2f}", " ".join(_filenames(clip))])  # fmt: skip
        print_table(None, ["#", "title", "duration", "score", "files"], rows)
    if download_dir is not None and not as_json:
        click.echo(f"downloaded to {download_dir}", err=True)


def _download(rf, job_id: str, out_dir: Path, show: bool):
    """Every clip file into `out_dir`, SHA-256 checked; returns the manifest."""
    if not show:
        return rf.clips.download(job_id, out_dir)
    with _progress() as bar:
        task = bar.add_task("download clips", total=None)

        def moved(done: int, total: int) -> None:  # on_progress(done_bytes, total_bytes), over all the files
            bar.update(task, completed=done, total=total)

        manifest = rf.clips.download(job_id, out_dir, on_progress=moved)
        bar.update(task, completed=bar.tasks[0].total or 1, total=bar.tasks[0].total or 1)
    return manifest


# --- keys (a login session's) ---------------------------------------------------------------------

KEY_COLUMNS = ["id", "name", "prefix", "scopes", "created", "revoked"]


def key_row(key) -> list:
    return [field(key, "id"), field(key, "name"), field(key, "prefix"), ",".join(field(key, "scopes", default=[])),
            when(field(key, "created_at", "createdAt")), when(field(key, "revoked_at", "revokedAt"))]


@click.command("list")
@json_option
@connection_options
@api_errors
def keys_list(as_json: bool, url: str | None, api_key: str | None) -> None:
    """The workspace's API keys (never their plaintext). Needs `reelfarm login --email`."""
    rf = client_for(url, api_key, session=True)
    try:
        found = list(rf.keys.list())
    finally:
        _close(rf)
    if as_json:
        print_json(found)
    elif not found:
        click.echo("no keys")
    else:
        print_table(None, KEY_COLUMNS, [key_row(k) for k in found])


@api_errors
def create_key(*, name: str, scopes: tuple[str, ...], as_json: bool, url: str | None, api_key: str | None) -> None:
    """`reelfarm keys create NAME` without --account: a key made on the server, by the saved login."""
    rf = client_for(url, api_key, session=True)
    try:
        created = rf.keys.create(name=name, scopes=list(scopes) or None)
    finally:
        _close(rf)
    if as_json:
        print_json(created)
        return
    click.echo(field(created, "key"))
    click.echo(f"key {field(created, 'id')} ({name or 'unnamed'}): shown once, store it now", err=True)


@click.command("revoke")
@click.argument("key_id")
@json_option
@connection_options
@api_errors
def keys_revoke(key_id: str, as_json: bool, url: str | None, api_key: str | None) -> None:
    """Revoke KEY_ID: it is refused from the next request. Needs `reelfarm login --email`."""
    rf = client_for(url, api_key, session=True)
    try:
        revoked = rf.keys.revoke(key_id)
    finally:
        _close(rf)
    if as_json:
        print_json(revoked)
    else:
        click.echo(f"revoked {key_id}")


# --- campaigns -----------------------------------------------------------------------------------

CAMPAIGN_COLUMNS = ["id", "title", "status", "languages", "videos", "created"]


def campaign_row(campaign) -> list:
    return [field(campaign, "campaign_id", "id"), field(campaign, "title"), field(campaign, "status"),
            ",".join(field(campaign, "languages", default=[])), len(field(campaign, "videos", default=[]) or []),
            when(field(campaign, "created_at", "createdAt"))]


def _show_campaign(campaign, as_json: bool) -> None:
    if as_json:
        print_json(campaign)
        return
    print_table(None, CAMPAIGN_COLUMNS, [campaign_row(campaign)])
    if field(campaign, "error"):
        click.echo(f"error: {field(campaign, 'error')}")
    videos = field(campaign, "videos", default=[]) or []
    if videos:
        print_table(None, ["video", "language", "status", "duration", "file"],
                    [[field(v, "id"), field(v, "language"), field(v, "status"),
                      f"{float(field(v, 'duration_seconds', default=0)):.1f}s", field(v, "file_url")]
                     for v in videos])  # fmt: skip


@click.group("campaigns", cls=DefaultGroup)
def campaigns() -> None:
    """Campaigns: a web page in, voiced vertical videos out (`reelfarm campaigns` lists them)."""


@campaigns.command("list")
@json_option
@connection_options
@api_errors
def campaigns_list(as_json: bool, url: str | None, api_key: str | None) -> None:
    """The campaigns, newest first."""
    rf = client_for(url, api_key)
    try:
        found = list(rf.campaigns.list())
    finally:
        _close(rf)
    if as_json:
        print_json(found)
    elif not found:
        click.echo("no campaigns")
    else:
        print_table(None, CAMPAIGN_COLUMNS, [campaign_row(c) for c in found])


@campaigns.command("create")
@click.argument("page_url", metavar="URL")
@click.option("--language", "-l", "languages", multiple=True, metavar="LANG",
              help="A language to voice it in (ISO 639-1; repeat for more) [the page's].")
@click.option("--title", default=None, help="The campaign's title [the page's].")
@click.option("--webhook-url", default=None, help="Where to POST its events.")
@json_option
@connection_options
@api_errors
def campaigns_create(page_url: str, languages: tuple[str, ...], title: str | None, webhook_url: str | None,
                     as_json: bool, url: str | None, api_key: str | None) -> None:
    """Make a campaign from the web page at URL."""
    fields = {k: v for k, v in {"title": title, "webhook_url": webhook_url}.items() if v}
    rf = client_for(url, api_key)
    try:
        created = rf.campaigns.create(page_url, languages=list(languages) or None, **fields)
    finally:
        _close(rf)
    _show_campaign(created, as_json)


def _campaign_action(name: str, doc: str):
    @campaigns.command(name)
    @click.argument("campaign_id", metavar="ID")
    @json_option
    @connection_options
    @api_errors
    def command(campaign_id: str, as_json: bool, url: str | None, api_key: str | None) -> None:
        rf = client_for(url, api_key)
        try:
            result = getattr(rf.campaigns, {"show": "get"}.get(name, name))(campaign_id)
        finally:
            _close(rf)
        _show_campaign(result, as_json)

    command.help = doc
    return command


_campaign_action("show", "A campaign's status and finished videos.")
_campaign_action("approve", "Approve a campaign in review: it becomes published.")
_campaign_action("cancel", "Stop a campaign that is still being made (it ends failed).")


# --- login ---------------------------------------------------------------------------------------

@click.command()
@click.option("--url", default=None, metavar="URL", help="The server [REELFARM_URL; http://127.0.0.1:8000].")
@click.option("--api-key", "api_key", default=None, metavar="KEY", help="Save this API key (checked first).")
@click.option("--email", default=None, help="Sign in as EMAIL (password prompted): saves the session and a new key.")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin's first line.")
@click.option("--key-name", default=None, help="Name of the key a login makes [cli@HOSTNAME].")
@api_errors
def login(url: str | None, api_key: str | None, email: str | None, password_stdin: bool,
          key_name: str | None) -> None:
    """Save a server and its credentials for the remote commands (config.toml, mode 0600).

    With --email it signs in, makes an API key for this machine and saves both (the session
    is what `reelfarm keys` needs); with --api-key it checks the key and saves it."""
    from reelfarm.client import ReelFarm

    url = (url or os.environ.get(URL_ENV) or "http://127.0.0.1:8000").rstrip("/")
    if api_key and email:
        raise click.UsageError("give --api-key or --email, not both")
    if not api_key and not email:
        api_key = click.prompt("API key", hide_input=True).strip()
    if api_key:
        rf = ReelFarm(url, api_key=api_key)
        try:
            me = rf.auth.me()
        finally:
            _close(rf)
        path = write_config({"url": url, "api_key": api_key})
        click.echo(f"saved {url} for workspace {field(me, 'account_name', 'accountName')} in {path}")
        return
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else click.prompt("Password", hide_input=True)
    rf = ReelFarm.login(url, email, password)
    try:
        created = rf.keys.create(name=key_name or f"cli@{socket.gethostname()}")
        me = rf.auth.me()
        token = rf.session_token
    finally:
        _close(rf)
    path = write_config({"url": url, "api_key": field(created, "key"), "key_id": field(created, "id"),
                         "session_token": token, "email": field(me, "email") or email})  # fmt: skip
    click.echo(f"logged in to {url} as {field(me, 'email') or email} "
               f"(workspace {field(me, 'account_name', 'accountName')}); saved in {path}")


@click.command()
@api_errors
def logout() -> None:
    """Sign the saved login out (revoking the key it made) and delete the config file."""
    from reelfarm.client import ReelFarm, ReelFarmError

    path = config_path()
    saved = read_config(path)
    if not saved:
        click.echo(f"not logged in ({path} does not exist)")
        return
    problems = []
    if saved.get("session_token") and saved.get("url"):
        rf = ReelFarm(saved["url"], session_token=saved["session_token"], max_retries=0)
        try:
            if saved.get("key_id"):
                rf.keys.revoke(saved["key_id"])
            rf.auth.logout()
        except ReelFarmError as exc:  # a server gone or a session expired: the file goes anyway
            problems.append(_message(exc))
        finally:
            _close(rf)
    remove_config(path)
    for problem in problems:
        click.echo(f"warning: {problem}", err=True)
    click.echo(f"logged out ({path} removed)")


COMMANDS = [login, logout, upload, wait_command, jobs, clips, campaigns]
KEY_COMMANDS = [keys_list, keys_revoke]


def register(main: click.Group, keys: click.Group) -> None:
    """Add the remote commands to `reelfarm` (and `keys list`/`keys revoke` to its `keys` group)."""
    for command in COMMANDS:
        main.add_command(command)
    for command in KEY_COMMANDS:
        keys.add_command(command)


