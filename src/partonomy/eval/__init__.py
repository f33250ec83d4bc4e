"""Evaluation: the model protocol, the resumable harness, scoring and reports."""
