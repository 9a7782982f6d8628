"""`python -m vjepa_wm.benchmarks.gpu_main [options]`: `vjepa-wm bench gpu` for a bare GPU machine.

`vjepa-wm` itself imports every subcommand, and some of those import the simulators' packages
(PyBullet, gymnasium) at once; a lent GPU machine has neither. This entry registers only the
`bench` commands, whose modules import nothing heavy until one runs, so the suite needs only
torch, numpy, safetensors, PyYAML, h5py, OpenCV, tqdm and matplotlib. Options and errors are
those of `vjepa-wm bench gpu`.
"""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from vjepa_wm.commands import bench

    parser = argparse.ArgumentParser(prog="vjepa-wm", allow_abbrev=False)
    bench.register(parser.add_subparsers(dest="command", required=True))
    args, extra = parser.parse_known_args(["bench", "gpu", *(sys.argv[1:] if argv is None else argv)])
    args.extra = extra
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError) as err:
        print(f"vjepa-wm bench gpu: error: {str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
