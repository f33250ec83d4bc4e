"""``python -m partonomy ...``: the ``partonomy`` command (what launchers such as torchrun and
``accelerate launch`` start with ``-m partonomy``)."""

from __future__ import annotations

from partonomy.cli.main import cli

if __name__ == "__main__":
    cli(prog_name="partonomy")
