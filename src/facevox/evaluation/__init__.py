"""Evaluation: identity, sync, content and quality metrics on generated clips."""
