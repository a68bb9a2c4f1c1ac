import sys

from model.accounting.cli import main

sys.exit(main())
