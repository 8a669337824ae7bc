"""Start phi4ui: `python app.py --help` lists every setting. The same as
`python -m phi4ui serve`; kept as the file that Spaces-style hosting runs."""

import sys

from phi4ui.commands.serve import main

if __name__ == "__main__":
    sys.exit(main())
