"""`python -m gbhub ...` is the `gbhub` command."""
import sys

from gbhub.tools.cli import main

sys.exit(main())
