"""The training pipeline of a splatter job: frames → nerfstudio data → splatfacto → splat files → preview.

Each step lives in its own module; ``job`` lists them in order and ``stage`` runs them resumably.
"""
