"""Generated gRPC code must match the .proto files (it is generated at build time, never edited)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _codegen():
    spec = importlib.util.spec_from_file_location("codegen", ROOT / "proto" / "codegen.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_matches_proto_files(tmp_path):
    codegen = _codegen()
    fresh = codegen.generate(tmp_path)
    assert {p.name for p in fresh} >= {"scheduler_pb2.py", "scheduler_pb2_grpc.py", "render_node_pb2_grpc.py",
                                       "common_pb2.py"}
    import reelfarm.v1

    installed = Path(reelfarm.v1.__file__).parent
    stale = [str(rel) for rel in fresh if (installed / rel.name).read_bytes() != (tmp_path / rel).read_bytes()]
    assert not stale, f"generated code is out of date, reinstall (pip install -e .): {stale}"


def test_services_expose_the_contract():
    from reelfarm.v1 import render_node_pb2, scheduler_pb2

    scheduler = scheduler_pb2.DESCRIPTOR.services_by_name["SchedulerService"]
    assert set(scheduler.methods_by_name) == {"RegisterNode", "Heartbeat", "ReportProgress", "CompleteTask",
                                              "FailTask"}
    assert scheduler.methods_by_name["ReportProgress"].client_streaming
    node = render_node_pb2.DESCRIPTOR.services_by_name["RenderNodeService"]
    assert set(node.methods_by_name) == {"RunTask", "CancelTask", "Drain", "GetStatus"}
