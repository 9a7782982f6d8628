"""Planning room: pose math (`poses`), the batched CEM search on the model's device (`cem`)
and the receding-horizon MPC loop against the `Robot` protocol (`robot`, `mpc`)."""
