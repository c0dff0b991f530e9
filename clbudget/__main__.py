import sys

from clbudget.cli import main

sys.exit(main())
