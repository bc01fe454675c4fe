"""Dashboard pages: (filled in by the page work)."""

from __future__ import annotations

from fastapi import APIRouter

from control_plane.dashboard.web import PREFIX

router = APIRouter(prefix=PREFIX, include_in_schema=False)
