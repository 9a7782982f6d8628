"""DROID: `common` (DroidConfig, DroidClip, collate_clips, skip reasons), `raw_reader`
(DroidRawDataset), `raw_writer` (write_droid_raw_episode, which sim recordings use), `rlds`
(DroidRLDSDataset), `rlds_writer` (tiny RLDS datasets in the real TFDS layout), `lerobot`
(DroidLeRobotDataset: the LeRobot port), `lerobot_writer` (raw episodes -> the port's LeRobot v3.0
layout) and `clip_source` (raw episodes as a pretraining clip source). DROID is Franka data: states and actions follow
`embodiments.franka`."""
