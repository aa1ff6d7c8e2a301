import sys

from learngene.cli import main

sys.exit(main())
