"""FormatError: what the format checks (formats.py, svg.py) raise, apart so neither imports the other."""

from __future__ import annotations


class FormatError(ValueError):
    """The bytes are not a supported format, or not the declared one (a 400/422 message)."""
