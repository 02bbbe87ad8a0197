"""Remediation actions, one per module, discovered by guard.actions.action_types."""
