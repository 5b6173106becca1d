"""Helpers for tests and offline trials: tiny random checkpoints in the real layout."""
