"""``python -m dpl_web``: the dpl command."""

import sys

from dpl_web.cli import main

sys.exit(main())
