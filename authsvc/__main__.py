"""``python -m authsvc``."""

from authsvc.cli import main

raise SystemExit(main())
