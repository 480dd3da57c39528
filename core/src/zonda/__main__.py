"""``python -m zonda`` is the same as the ``zonda`` command."""

from zonda.cli import main

raise SystemExit(main())
