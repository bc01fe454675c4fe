"""Batch manifests of assets and their review queue."""
