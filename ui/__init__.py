"""Gemma Desk user interface: PySide6 widgets only (thin over app/)."""
