"""`python -m tenure` runs the command line."""

import sys

from tenure.cli import main

sys.exit(main())
