"""Output sizes and crops for the four aspect ratios (no media code: the API imports it too)."""

from __future__ import annotations

STANDARD_SIZES: dict[str, tuple[int, int]] = {
    "9:16": (1080, 1920),
    "1:1": (1080, 1080),
    "4:5": (1080, 1350),
    "16:9": (1920, 1080),
}


def _aspect(aspect_ratio: str) -> tuple[int, int]:
    if aspect_ratio not in STANDARD_SIZES:
        raise ValueError(f"unknown aspect ratio {aspect_ratio!r}; expected one of {sorted(STANDARD_SIZES)}")
    w, _, h = aspect_ratio.partition(":")
    return int(w), int(h)


def _even(value: float) -> int:
    """H.264 with 4:2:0 chroma needs even dimensions."""
    return max(2, round(value / 2) * 2)


def output_size(aspect_ratio: str, output_height: int | None = None) -> tuple[int, int]:
    """Output (width, height): the standard size, or one scaled to ``output_height``."""
    aw, ah = _aspect(aspect_ratio)
    if output_height is None:
        return STANDARD_SIZES[aspect_ratio]
    height = _even(output_height)
    return _even(height * aw / ah), height


def centre_crop(src_w: int, src_h: int, aspect_ratio: str) -> tuple[int, int, int, int]:
    """Largest centred (crop_w, crop_h, x, y) of the source with the given aspect."""
    aw, ah = _aspect(aspect_ratio)
    if src_w * ah > src_h * aw:  # source is wider than the target: trim the sides
        crop_h = src_h // 2 * 2
        crop_w = min(src_w, src_h * aw // ah) // 2 * 2
    else:  # source is taller: trim top and bottom
        crop_w = src_w // 2 * 2
        crop_h = min(src_h, src_w * ah // aw) // 2 * 2
    crop_w, crop_h = max(2, crop_w), max(2, crop_h)
    # Even offsets: ffmpeg would silently round odd ones for 4:2:0 sources.
    return crop_w, crop_h, max(0, (src_w - crop_w) // 4 * 2), max(0, (src_h - crop_h) // 4 * 2)
