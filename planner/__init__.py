"""Planning room: the one planning objective (`energy`), the batched CEM search over any
`Embodiment` on the model's device (`cem`), goal images and sub-goal sequences (`goals`), the
receding-horizon MPC loop against the `Robot` contract (`mpc`), the model view it plans with
(`planning_model`), energy landscapes and plots."""
