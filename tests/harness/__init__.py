"""Test harness: throwaway servers (PostgreSQL, S3), test media and polling, for tests and benchmarks."""
