"""``python -m mlapi``: the same as the ``mlapi-serve`` command."""

import sys

from mlapi.serve import main

sys.exit(main())
