import sys

from causmatch.cli import main

sys.exit(main())
