"""``python -m custody.airgap``: the ``custody-sign`` command, where no console script is installed."""

import sys

from custody.airgap.cli import main

sys.exit(main())
