"""World-model room. At the top, the models for inference: the V-JEPA encoder (`vit`: video + image
tokenizers, 3D RoPE in `rope`), the masked predictor (`predictor`), the action-conditioned predictor
(`ac_predictor`), `WorldModel`, preprocessing, feature pictures and typed configs (`configuration`),
and the CPU RoPE-folding transform the planner applies (`rope_folding`). Below: `checkpoints/`
(safe loading, atomic writing, every format), `pretraining/` (masks, the 2.1 objective, clip
sources, trainer), `ac_training/` (loss, latent cache, trainer) and `training/` (what both trainers
share: DDP, train state, schedules).
"""
