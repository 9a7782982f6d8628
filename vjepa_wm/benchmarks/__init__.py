"""Speed and memory benchmarks, run by `vjepa-wm bench <name>`.

Every figure is reported beside a dense matmul rate measured in the same run (achieved FLOP/s
over matmul FLOP/s), because the machines are shared and absolute times drift.
"""
