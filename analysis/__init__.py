"""Content analysis: from a transcript (and the signals measured beside it) to the clips a
job renders: moments, selection, clip metadata and an optional LLM.

Pure functions over typed inputs (reelfarm.options, reelfarm.transcript); no database, no
gRPC, no media decoding. The scheduler runs it; anything may import it.
"""
