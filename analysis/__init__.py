"""Content analysis: from a transcript (and the signals measured beside it) to the clips a
job renders: moments, selection, clip metadata and an optional LLM; and a video's Style DNA
(analysis/style/: measured from one decode of its frames and one of its audio, applied as
ffmpeg filters).

No database and no gRPC: the scheduler runs the selection, render nodes the style analysis;
anything may import it.
"""
