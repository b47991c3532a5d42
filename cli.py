"""`python cli.py ...` is the same as the `bbopt ...` command."""

import sys

from bbopt.cli import main

if __name__ == "__main__":
    sys.exit(main())
