"""`python -m bot` is `docsbot`."""

import sys

from bot.cli import main

sys.exit(main())
