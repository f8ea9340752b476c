"""``python -m investigation`` runs the ``investigation`` command (for a venv whose scripts are not on PATH)."""

from investigation.cli import main

raise SystemExit(main())
