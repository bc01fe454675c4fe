"""Where the remote commands find their server: flags, then REELFARM_URL / REELFARM_API_KEY, then the
config file `reelfarm login` writes ($XDG_CONFIG_HOME/reelfarm/config.toml, mode 0600)."""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

URL_ENV = "REELFARM_URL"
KEY_ENV = "REELFARM_API_KEY"
# The keys config.toml holds, in the order they are written.
FIELDS = ("url", "api_key", "key_id", "session_token", "email")


class ConfigError(Exception):
    """The config file exists but cannot be read."""


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "reelfarm" / "config.toml"


def read_config(path: Path | None = None) -> dict[str, str]:
    """The saved login ({} when there is none)."""
    path = path or config_path()
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    return {k: v for k, v in data.items() if k in FIELDS and isinstance(v, str) and v}


def write_config(values: dict[str, str | None], path: Path | None = None) -> Path:
    """Write the login, readable by its owner only (0600; its folder 0700): it holds secrets."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lines = ["# Written by `reelfarm login`; REELFARM_URL and REELFARM_API_KEY override it."]
    # A JSON string of ASCII is a TOML basic string (the same escapes; \uXXXX for the rest).
    lines += [f"{k} = {json.dumps(values[k], ensure_ascii=True)}" for k in FIELDS if values.get(k)]
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask, and an older file's mode
        os.write(fd, ("\n".join(lines) + "\n").encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


def remove_config(path: Path | None = None) -> bool:
    path = path or config_path()
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def same_server(a: str | None, b: str | None) -> bool:
    return bool(a and b) and a.rstrip("/") == b.rstrip("/")


@dataclass(frozen=True)
class Remote:
    """The server a remote command talks to, and how it authenticates."""

    url: str | None
    api_key: str | None
    session_token: str | None  # the saved login's session: only for the server it was made on
    path: Path

    @classmethod
    def resolve(cls, url: str | None = None, api_key: str | None = None, path: Path | None = None) -> Remote:
        """--url/--api-key over REELFARM_URL/REELFARM_API_KEY over the config file."""
        path = path or config_path()
        saved = read_config(path)
        url = url or os.environ.get(URL_ENV) or saved.get("url")
        api_key = api_key or os.environ.get(KEY_ENV) or (saved.get("api_key") if same_server(url, saved.get("url"))
                                                         else None)  # fmt: skip
        session = saved.get("session_token") if same_server(url, saved.get("url")) else None
        return cls(url=url.rstrip("/") if url else None, api_key=api_key, session_token=session, path=path)
