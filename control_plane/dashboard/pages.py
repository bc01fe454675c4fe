"""Every dashboard page router, in the order they are included."""

from __future__ import annotations

from control_plane.dashboard import auth_pages, media_pages, review_pages, settings_pages

ROUTERS = [auth_pages.router, settings_pages.router, media_pages.router, review_pages.router]
