"""Tools the model may call: the registry (schemas, validation, execution), the built-in
tools, and the approval asked before a tool that needs the user's consent runs."""
