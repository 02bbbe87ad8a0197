"""Renderers for gate results: rich table, JSON, GitHub job summary."""
