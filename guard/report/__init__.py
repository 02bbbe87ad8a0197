"""Renderers: the gate's table, JSON and GitHub summary; the watchdog's; what each verb prints."""
