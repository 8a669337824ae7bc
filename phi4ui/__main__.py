"""`python -m phi4ui COMMAND`: see `phi4ui.commands`."""

import sys

from phi4ui.commands import main

sys.exit(main())
