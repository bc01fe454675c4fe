"""Generated gRPC bindings of proto/reelfarm/v1/*.proto (built by proto/hatch_build.py, never edited)."""
