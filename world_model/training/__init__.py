"""What both trainers share: process groups under torchrun (`distributed`), exact-resume training
checkpoints (`train_state`) and step schedules (`schedules`)."""
