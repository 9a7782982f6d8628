"""The front door: the `vjepa-wm` command line, which ties the rooms together.

Each subcommand lives in `vjepa_wm.commands.<name>` and imports its room lazily, so
`vjepa-wm --help` stays fast.
"""
__version__ = "0.1.0"
