"""Engines behind one contract (`contract`): the local MLX model (`local`), a remote
OpenAI-compatible server (`remote`), how one is opened (`factory`), and the agent loop that
runs tools for both (`agent`)."""
