"""Organizer-side tools: the competition bundles, the submission zip, the image, the rehearsal, the baselines."""
