import sys

from vjepa_wm.cli import main

sys.exit(main())
