"""Builders that turn user inputs into a DeployPlan."""

MAX_INPUT_BYTES = 64 * 1024 * 1024  # larger inputs are refused before they are read
