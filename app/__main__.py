"""`python -m app`: the same as the `gemma-desk` console command."""

from app.cli import main

raise SystemExit(main())
