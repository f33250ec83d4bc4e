"""Data: Partonomy-Synth, real-dataset readers, object-part matching, the training mixture."""
