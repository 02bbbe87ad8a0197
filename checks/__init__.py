"""Checks and watchers, one module each, discovered by guard.registry."""
