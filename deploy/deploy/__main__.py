"""``python -m deploy``: the same as the ``yield-deploy`` command."""

import sys

from deploy.cli import main

sys.exit(main())
