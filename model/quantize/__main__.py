import sys

from model.quantize.cli import main

sys.exit(main())
