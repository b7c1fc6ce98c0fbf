"""Logging set-up, rotation policy and file I/O."""
