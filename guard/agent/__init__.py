"""Planners: the deterministic playbook and the optional model-backed agent loop."""
