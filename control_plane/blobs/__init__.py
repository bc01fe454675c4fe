"""Content-addressed blobs: one stored object per SHA-256, access per account by upload."""
