"""Datasets room: readers of DROID (RLDS through tensorflow-datasets, raw h5 + MP4),
TartanDrive / NWM logs and our own sim recordings; clip sampling; state -> action conversion.

Note: this top-level package shadows Hugging Face's `datasets`; the project never uses that library.
Not built yet (issue 4); this package only reserves the room.
"""
