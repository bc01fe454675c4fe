"""Generate Python gRPC/protobuf code from proto/reelfarm/**/*.proto.

The code lands in the ground-floor package as `reelfarm.v1` (REPO_ROOT/reelfarm/v1/),
the import path protoc derives from the files' place under proto/. Used by the
hatchling build hook (proto/hatch_build.py) and by the test that checks generated
code matches the .proto files. Generated files are never committed.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
# Where the generated package `reelfarm.v1` goes: beside the ground floor's other modules.
REPO_ROOT = PROTO_ROOT.parent


def proto_files(root: Path = PROTO_ROOT) -> list[Path]:
    return sorted((root / "reelfarm").rglob("*.proto"))


def generate(out_dir: Path, root: Path = PROTO_ROOT) -> list[Path]:
    """Run protoc into out_dir; returns the generated files (relative to out_dir)."""
    import grpc_tools
    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{root}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *[str(p.relative_to(root)) for p in proto_files(root)],
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed: {' '.join(args)}")
    # Only what these .proto files produce (out_dir may be the repository root).
    outputs = [rel.with_name(rel.stem + suffix) for rel in (p.relative_to(root) for p in proto_files(root))
               for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")]  # fmt: skip
    return sorted(rel for rel in outputs if (out_dir / rel).is_file())


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO_ROOT):
        print(path)
