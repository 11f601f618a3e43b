"""``python -m yield_deploy``: the same as the ``yield-deploy`` command."""

import sys

from yield_deploy.cli import main

sys.exit(main())
