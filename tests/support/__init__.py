"""Shared test helpers, registered as pytest plugins by tests/conftest.py."""
