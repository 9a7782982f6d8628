"""One module per `vjepa-wm` subcommand: a typed config, `run(config)`, and `register(subparsers)`."""
