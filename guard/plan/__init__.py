"""Builders that turn user inputs into a DeployPlan."""
