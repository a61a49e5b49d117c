"""``python -m nestdb.cli``: the ``nestdb`` command."""

import sys

from nestdb.cli import console

sys.exit(console())
