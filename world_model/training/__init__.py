"""What both trainers share: process groups under torchrun (`distributed`), exact-resume training
checkpoints (`train_state`), step schedules (`schedules`), checks of their settings (`settings`),
run folders that belong to one run (`run_folder`) and the fingerprints that tell runs and latent
caches apart (`fingerprint`)."""
