"""Datasets room: readers of DROID (RLDS through tensorflow-datasets, raw h5 + MP4),
TartanDrive / NWM logs and our own sim recordings; clip sampling; state -> action conversion.

Note: this top-level package shadows Hugging Face's `datasets`; the project never uses that library.
DROID (issue 4): `droid_common` (DroidConfig, DroidClip, collate_clips), `droid_raw_reader`
(DroidRawDataset), `droid_rlds` (DroidRLDSDataset), `droid_raw` (write_droid_raw_episode, the
writer sim/collect.py uses) and `droid_rlds_writer` (tiny RLDS datasets for tests). Modules are
imported directly; nothing here imports TensorFlow until an RLDS pass starts.
"""
