"""`python -m simtrain.diagnose`: the diagnostics command line (see simtrain.diagnosis.cli)."""

import sys

from simtrain.diagnosis.cli import main

if __name__ == "__main__":
    sys.exit(main())
