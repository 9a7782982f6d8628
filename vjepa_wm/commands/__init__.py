"""One module per `vjepa-wm` subcommand; each exposes `register(subparsers)`."""
