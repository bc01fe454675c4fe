"""The API edge of ProcessOptions (reelfarm/options.py): parsed once here, a 400 naming the field."""

from __future__ import annotations

from pydantic import ValidationError

from control_plane.errors import ApiError
from reelfarm.options import ProcessOptions


def parse_options(raw: str | dict | None) -> ProcessOptions:
    """Validate options; 400 naming the offending field."""
    try:
        if raw is None or raw == "":
            return ProcessOptions()
        if isinstance(raw, str):
            return ProcessOptions.model_validate_json(raw)
        return ProcessOptions.model_validate(raw)
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            if err["type"] == "json_invalid":
                parts.append("options: not valid JSON")
            else:
                parts.append(f"options.{loc}: {err['msg']}" if loc else f"options: {err['msg'].removeprefix('Value error, ')}")
        raise ApiError(400, "; ".join(parts)) from None
