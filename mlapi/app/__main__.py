"""``python -m app``: the same as the ``mlapi-serve`` command."""

import sys

from app.serve import main

sys.exit(main())
