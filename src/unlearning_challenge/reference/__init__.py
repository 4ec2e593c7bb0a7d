"""The reference: the model, its training recipe, and the families of original and retrained models.

- :mod:`.models`: the architecture and weight files;
- :mod:`.training`: the training recipe; :mod:`.evaluation`: what scoring needs from a model;
- :mod:`.calibration`: machine speed, for the time budget;
- :mod:`.generate`: the work folder, shards and the assembled phase data; :mod:`.ray_tasks`: Ray.
"""
