"""``python -m gateway`` is the same as the ``imi-gateway`` command."""

import sys

from gateway.cli import main

sys.exit(main())
