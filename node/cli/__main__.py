"""``python -m node.cli``."""

import sys

from node.cli.app import main

sys.exit(main())
