"""``python -m loadtest``: run the load harness (see loadtest.runner)."""

import sys

from loadtest.runner import main

sys.exit(main())
