"""Pre-deploy checks (IDs 001-099)."""
