"""`python -m cli …`: the same as the `tradelane` command."""

import sys

from cli.main import main

sys.exit(main())
