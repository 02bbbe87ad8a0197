"""Notifications for humans: `messages` (what a notification says: text, Markdown, Slack blocks; pure) and
`routes` (where it goes: stdout, Slack, SNS, GitHub issues and commit statuses; dispatch and self-test).
"""
