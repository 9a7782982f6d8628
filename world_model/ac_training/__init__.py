"""Training the action-conditioned predictor on a frozen encoder: typed config (`config`), the
teacher-forcing + rollout loss (`loss`), the latent cache (`latent_cache`) and the trainer (`trainer`)."""
