"""The ``partonomy`` command line: thin commands, each calling one library function."""
