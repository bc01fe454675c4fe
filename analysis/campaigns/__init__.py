"""Campaign scripts: what a page's video says, in the page's language and others (script.py,
translate.py)."""
