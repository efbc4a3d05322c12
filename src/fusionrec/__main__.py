"""``python -m fusionrec`` (and ``torchrun -m fusionrec``) runs the console script."""

import sys

from fusionrec.cli import main

sys.exit(main())
