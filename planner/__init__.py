"""Planning room: pose math (`poses`), the batched CEM search on the model's device (`cem`)
and the receding-horizon MPC loop against the `Robot` protocol (`mpc`).

Not built yet (issue 5); this package only reserves the room.
"""
