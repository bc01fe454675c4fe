"""Campaigns on a render node (issue 18, seeds 004): capture a web page, voice a script, and
compose 1080x1920 videos from the screenshots (capture.py, voice.py, compose.py; types.py holds
what passes between them)."""
