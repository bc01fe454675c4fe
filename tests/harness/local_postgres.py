"""A throwaway PostgreSQL server on 127.0.0.1 for tests and benchmarks.

`LocalPostgres` runs `initdb` in a fresh temporary folder, starts the cluster with
`pg_ctl` on a free loopback port (its unix socket stays inside that folder too), and
hands out `postgresql+psycopg://` URLs. Nothing outside the folder is touched and no
password is involved (trust authentication, loopback only). Start-up takes ~2-3 s.

    with LocalPostgres() as pg:
        url = pg.create_database()   # a fresh, empty database per test or run

`initdb` refuses to run as root: as root, the server's commands run as the `postgres`
user (via `runuser`, or `su`), which then owns the folder. The server is stopped
(`pg_ctl stop -m immediate`) by stop(), on leaving the `with` block, and at interpreter
exit; should all of those be skipped (SIGKILL), the postmaster still shuts itself down
within about a minute once its folder's lock file is gone.

Only the standard library is needed, plus psycopg (3) for create_database() and
drop_database(); without it they fall back to the `psql` client next to `pg_ctl`.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Self

SERVER_USER = "postgres"
# Where Debian/Ubuntu's `postgresql` package puts the server binaries (not on PATH).
DEBIAN_BIN_GLOB = "/usr/lib/postgresql/*/bin"
# Throwaway data: durability is not wanted, speed is.
DEFAULT_SERVER_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}
_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class LocalPostgresError(RuntimeError):
    """The server could not be set up, started or used; the message carries its log tail."""


def find_bin_dir() -> Path | None:
    """The folder holding `pg_ctl` and `initdb`: PATH first, then the newest Debian version."""
    on_path = shutil.which("pg_ctl")
    candidates = [Path(on_path).resolve().parent] if on_path else []
    candidates += sorted((Path(p) for p in glob.glob(DEBIAN_BIN_GLOB)), key=_version_key, reverse=True)
    for folder in candidates:
        if all(os.access(folder / tool, os.X_OK) for tool in ("pg_ctl", "initdb")):
            return folder
    return None


def _version_key(path: Path) -> tuple:
    return tuple(int(part) if part.isdigit() else 0 for part in path.parent.name.split("."))


def _runas_prefix() -> list[str] | None:
    """How to run the server's commands: [] as a normal user; as root, as `postgres`.
    None: root, and no way to become another user."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        return None
    if shutil.which("runuser"):
        return ["runuser", "-u", SERVER_USER, "--"]
    if shutil.which("su"):
        return ["su", SERVER_USER, "-s", "/bin/sh", "-c", '"$0" "$@"']  # argv passes through untouched
    return None


def unavailable_reason() -> str | None:
    """Why a LocalPostgres cannot start here, or None when it can."""
    if find_bin_dir() is None:
        return ("PostgreSQL server binaries (pg_ctl, initdb) not found on PATH or in "
                f"{DEBIAN_BIN_GLOB}; install the `postgresql` package (.ci/setup does)")
    if _runas_prefix() is None:
        return (f"running as root, and initdb refuses root: need a `{SERVER_USER}` user and "
                "`runuser` or `su` to run the server as it")
    return None


def available() -> bool:
    """Whether pg_ctl/initdb exist (and, as root, can be run as the postgres user)."""
    return unavailable_reason() is None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalPostgres:
    """One private PostgreSQL cluster in a temporary folder; see the module docstring."""

    def __init__(self, *, database: str = "reelfarm", port: int | None = None, bin_dir: str | Path | None = None,
                 base_dir: str | Path | None = None, settings: dict[str, str] | None = None,
                 ready_timeout_s: float = 60.0) -> None:
        _check_name(database)
        self.database = database
        self.port = port
        self.bin_dir = Path(bin_dir) if bin_dir else None
        self._base_dir_arg = Path(base_dir) if base_dir else None
        self.settings = {**DEFAULT_SERVER_SETTINGS, **(settings or {})}
        self.ready_timeout_s = ready_timeout_s
        self.base_dir: Path | None = None
        self._owns_base_dir = False
        self._running = False
        self._runas: list[str] = []

    # Paths inside the folder -----------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self._base() / "data"

    @property
    def socket_dir(self) -> Path:
        return self._base() / "sock"

    @property
    def log_path(self) -> Path:
        return self._base() / "postgres.log"

    def _base(self) -> Path:
        if self.base_dir is None:
            raise LocalPostgresError("LocalPostgres is not started")
        return self.base_dir

    # URLs ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the database made at start."""
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        if self.port is None:
            raise LocalPostgresError("LocalPostgres is not started")
        return f"postgresql+psycopg://{SERVER_USER}@127.0.0.1:{self.port}/{database}"

    @property
    def running(self) -> bool:
        return self._running

    # Life cycle -------------------------------------------------------------------------

    def start(self) -> Self:
        if self._running:
            return self
        reason = unavailable_reason() if self.bin_dir is None else None
        if reason:
            raise LocalPostgresError(reason)
        self.bin_dir = self.bin_dir or find_bin_dir()
        runas = _runas_prefix()
        if runas is None:
            raise LocalPostgresError(unavailable_reason() or "cannot run initdb as a non-root user")
        self._runas = runas
        self._make_base_dir()
        atexit.register(self.stop)
        try:
            self._initdb()
            # A port picked free may be taken before the server binds it: try a few.
            fixed_port = self.port is not None
            for attempt in range(1 if fixed_port else 3):
                if not fixed_port:
                    self.port = free_port()
                result = self._pg_ctl_start()
                if result.returncode == 0:
                    break
                if fixed_port or "could not bind" not in self._log_tail() or attempt == 2:
                    raise LocalPostgresError(
                        f"PostgreSQL did not start on 127.0.0.1:{self.port} (pg_ctl exited with "
                        f"{result.returncode}): {(result.stdout + result.stderr).strip()[-2000:]}\n"
                        f"{self._log_tail()}")
            self._running = True
            self.create_database(self.database)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server at once (no checkpoint: the data is thrown away) and delete its folder."""
        if self.base_dir is None:
            return
        if self._running or (self.data_dir / "postmaster.pid").exists():
            self._run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w", "stop"],
                      check=False, timeout=30)
            self._running = False
        if self._owns_base_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None
        atexit.unregister(self.stop)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # Databases --------------------------------------------------------------------------

    def create_database(self, name: str | None = None) -> str:
        """CREATE DATABASE (a fresh, empty one; a generated name unless given); returns its URL."""
        name = name or f"t_{uuid.uuid4().hex[:16]}"
        _check_name(name)
        self.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """DROP DATABASE, disconnecting whoever is still connected to it."""
        _check_name(name)
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def execute(self, sql: str) -> None:
        """Run one statement in the `postgres` database, outside a transaction (autocommit)."""
        if not self._running:
            raise LocalPostgresError("LocalPostgres is not started")
        try:
            import psycopg
        except ImportError:
            self._run([str(self.bin_dir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                       "-p", str(self.port), "-U", SERVER_USER, "-d", "postgres", "-c", sql], timeout=60)
            return
        try:
            with psycopg.connect(host="127.0.0.1", port=self.port, user=SERVER_USER, dbname="postgres",
                                 autocommit=True, connect_timeout=10) as conn:
                conn.execute(sql)
        except psycopg.Error as exc:
            raise LocalPostgresError(f"{sql!r} failed: {exc}\n{self._log_tail()}") from exc

    # Internals --------------------------------------------------------------------------

    def _make_base_dir(self) -> None:
        if self._base_dir_arg is not None:
            self._base_dir_arg.mkdir(parents=True, exist_ok=True)
            self.base_dir = self._base_dir_arg
        else:
            # Under the system temp folder, not a pytest one: the postgres user must reach it.
            self.base_dir = Path(tempfile.mkdtemp(prefix="reelfarm-pg-"))
            self._owns_base_dir = True
        self.socket_dir.mkdir(exist_ok=True)
        if self._runas:
            user = pwd.getpwnam(SERVER_USER)
            for path in (self.base_dir, self.socket_dir):
                os.chown(path, user.pw_uid, user.pw_gid)

    def _initdb(self) -> None:
        self._run([str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", SERVER_USER, "-A", "trust",
                   "--no-locale", "-E", "UTF8", "--no-sync", "--no-instructions"], timeout=120)

    def _pg_ctl_start(self) -> subprocess.CompletedProcess:
        options = ["-c", "listen_addresses=127.0.0.1", "-p", str(self.port), "-k", str(self.socket_dir)]
        for key, value in self.settings.items():
            options += ["-c", f"{key}={value}"]
        result = self._run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_path),
                            "-w", "-t", str(int(self.ready_timeout_s)), "-o", shlex.join(options), "start"],
                           check=False, timeout=self.ready_timeout_s + 30)
        return result

    def _run(self, argv: list[str], *, check: bool = True, timeout: float) -> subprocess.CompletedProcess:
        try:
            result = subprocess.run([*self._runas, *argv], check=False, capture_output=True, text=True,
                                    timeout=timeout, cwd=self.base_dir, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise LocalPostgresError(f"{Path(argv[0]).name} timed out after {timeout:.0f}s\n"
                                     f"{self._log_tail()}") from exc
        if check and result.returncode != 0:
            raise LocalPostgresError(
                f"{Path(argv[0]).name} exited with {result.returncode}: {' '.join(argv[1:])}\n"
                f"{(result.stdout + result.stderr).strip()[-4000:]}\n{self._log_tail()}")
        return result

    def _log_tail(self, chars: int = 4000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except (OSError, LocalPostgresError):
            return "(no server log)"
        return f"--- {self.log_path} (last {chars} characters) ---\n{text[-chars:]}"


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise ValueError(f"database name {name!r}: lower-case letters, digits and _ only")
