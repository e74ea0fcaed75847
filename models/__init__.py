"""The model's life: the SavedModels and their descriptions (modelo/), TF Serving's config
(models_config/), training (train.py) and evaluation on NAB (evaluation/).

Only the artifacts go into the function images (stack.yml copies models/modelo); the code
here runs on a developer's machine or in CI.
"""
