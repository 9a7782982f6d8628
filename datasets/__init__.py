"""Datasets room: readers and writers of recorded experience. `droid/` (RLDS through
tensorflow-datasets, raw h5 + MP4, the raw writer our sim recordings use, the pretraining clip
source), video writing (`video_io`) and generated clips (`moving_shapes`). Nothing here imports
TensorFlow until an RLDS pass starts."""
