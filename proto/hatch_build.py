"""Hatchling build hook: generates gRPC code from .proto files at build time."""

from __future__ import annotations

import sys
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

sys.path.insert(0, str(Path(__file__).resolve().parent))
from codegen import REPO_ROOT, generate  # noqa: E402


class ProtoBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        generated = generate(REPO_ROOT)
        # Generated files are git-ignored; list them so the wheel still carries them.
        build_data.setdefault("artifacts", []).extend(
            str((REPO_ROOT / rel).relative_to(self.root)) for rel in generated
        )
