"""The job option flags (one per ProcessOptions field) shared by `reelfarm render` and `reelfarm upload`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, get_args, get_origin

import click
from pydantic import ValidationError

from reelfarm.options import ProcessOptions

# Short flags the docs use for the most common options.
FLAG_ALIASES = {"numClips": ["--clips"], "aspectRatio": ["--aspect"]}
# A one-shot render defaults to one full-source clip (`--mode ai` picks the moments instead).
CLI_DEFAULTS = {"mode": "none"}


def flag_name(field_name: str) -> str:
    """numClips -> --num-clips."""
    return "--" + "".join("-" + c.lower() if c.isupper() else c for c in field_name)


def option_flags(*, defaults: dict | None = None, server_defaults: bool = False):
    """A decorator adding one flag per ProcessOptions key (numClips -> --num-clips, plus the short
    aliases), each passed to the command under its field name.

    `defaults` replaces ProcessOptions' defaults for some fields (`render`: CLI_DEFAULTS). With
    `server_defaults` every flag defaults to None instead, so only the flags given are sent and
    the server applies its own defaults (`upload`); the help still shows ProcessOptions' default."""
    defaults = defaults or {}

    def decorate(func):
        for field_name, info in reversed(list(ProcessOptions.model_fields.items())):
            flag = flag_name(field_name)
            names = [flag, *FLAG_ALIASES.get(field_name, []), field_name]
            annotation = info.annotation
            default = None if server_defaults else defaults.get(field_name, info.default)
            described = info.description or ""
            if server_defaults and field_name != "transcript":
                shown = "server default" if info.default is None else f"default: {_shown(info.default)}"
                described = f"{described} [{shown}]" if described else f"[{shown}]"
            show_default = not server_defaults
            if field_name == "transcript":
                decorator = click.option(flag, field_name, type=click.Path(exists=True, dir_okay=False, path_type=Path),
                                         help="JSON file: a list of {text, start, end} words (source seconds), "
                                              "for captions")  # fmt: skip
            elif annotation is bool:
                decorator = click.option(f"{flag}/--no-{flag[2:]}", field_name, default=default,
                                         show_default=show_default, help=described)  # fmt: skip
            else:
                if get_origin(annotation) is Literal:
                    kind = click.Choice(get_args(annotation))
                elif annotation is int:
                    kind = int
                elif annotation in (float, float | None):
                    kind = float
                else:
                    kind = str
                decorator = click.option(*names, type=kind, default=default, show_default=show_default,
                                         help=described)  # fmt: skip
            func = decorator(func)
        return func

    return decorate


def _shown(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return repr(value) if isinstance(value, str) else str(value)


def pop_options(flags: dict) -> dict:
    """Take the ProcessOptions flags out of a command's keyword arguments."""
    return {name: flags.pop(name) for name in list(flags) if name in ProcessOptions.model_fields}


def validated_options(options: dict, *, given_only: bool = False) -> dict:
    """The flags as a ProcessOptions document (a transcript file read in); a bad value is a usage
    error naming the field. `given_only`: only the flags given (None means not given), for the server."""
    options = dict(options)
    if given_only:
        options = {name: value for name, value in options.items() if value is not None}
    if options.get("transcript") is not None:
        options["transcript"] = json.loads(Path(options["transcript"]).read_text())
    try:
        parsed = ProcessOptions.model_validate(options)
    except ValidationError as exc:
        raise click.BadParameter(str(exc)) from None
    if given_only:
        return parsed.model_dump(include=set(options), exclude_none=True)
    return parsed.model_dump(exclude_none=True)
