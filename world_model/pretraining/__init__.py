"""V-JEPA 2 / 2.1 self-supervised pretraining: typed config (`config`), multiblock masks (`masks`),
the 2.1 objective (`objective`), clip sources and the deterministic sample stream (`data`), the
collapse monitor (`collapse`) and the trainer (`trainer`)."""
