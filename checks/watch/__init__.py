"""Post-deploy watchers (IDs 101-199)."""
