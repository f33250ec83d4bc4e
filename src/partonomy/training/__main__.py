"""``python -m partonomy.training CONFIG [key=value ...]``: the same as ``partonomy train``.

Handy under launchers that run a module: ``torchrun --nproc_per_node 8 -m partonomy.training CONFIG``.
"""

from __future__ import annotations

from partonomy.cli.train import command

if __name__ == "__main__":
    command(prog_name="python -m partonomy.training")
