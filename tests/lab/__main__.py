"""``python -m tests.lab start|stop|status`` (see tests/lab/cli.py)."""

import sys

from tests.lab.cli import main

sys.exit(main())
