"""TartanDrive: `bags` (ROS 1 / ROS 2 logs through rosbags: topics, tracks, images), `bag_writer`
(logs written as TartanDrive bags, for the sim car and tests), `messages` (image, odometry and
/cmd messages as numpy), `torch_export` (rosbag_to_dataset's `.pt` / `.npz` per bag),
`nwm_format` (NWM/GNM trajectory folders, `traj_names.txt`, eval indices; read and written),
`safe_pickle` (their pickles read without running code), and the published processing between
them: `sampling` (4 Hz image/odometry pairs), `trajectories` (poses with the yaw offset, the
backwards cut), `splits` (train/test and NWM's eval indices) and `processing` (bags -> an NWM
dataset, resumable and parallel; `vjepa-wm nav-process`). Poses and actions follow
`embodiments.car`."""
