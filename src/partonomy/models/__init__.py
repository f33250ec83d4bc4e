"""Models: reference models, PLUM and (later) baselines, all implementing the eval protocol."""
