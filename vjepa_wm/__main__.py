import sys

from vjepa_wm.cli import main

if __name__ == "__main__":
    sys.exit(main())
