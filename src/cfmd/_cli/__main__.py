"""``python -m cfmd._cli``: the ``cfmd`` command."""

import sys

from . import main

sys.exit(main())
