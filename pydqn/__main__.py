import sys

from pydqn.cli import main

sys.exit(main())
