"""Gemma Desk application layer: engine service, storage, capture, model manager, CLI.

May use QtCore (signals, threads); never QtWidgets. Imports flow ui -> app -> mlx_model.
"""
