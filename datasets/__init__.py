"""Datasets room: readers and writers of recorded experience. `droid/` (RLDS through
tensorflow-datasets, raw h5 + MP4, the raw writer our sim recordings use, the pretraining clip
source, LeRobot), the LeRobot v2.1/v3.0 layout (`lerobot_format`, `lerobot_writer`), `tartandrive/`
(bags, the NWM format and processing), video writing (`video_io`) and PyAV decoding/encoding
(`video_av`: AV1 and H.264, exact seeking), and generated clips (`moving_shapes`). Nothing here imports
TensorFlow until an RLDS pass starts."""
