"""Typed ports and boto3/PyGithub adapters; every adapter counts its calls."""
