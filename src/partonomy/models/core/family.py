"""A model family: the small package of parts that makes one segmentation LMM a configuration.

Each family (``plum``, ``lisa``, ``glamm``...) registers one :class:`Family` in
:data:`partonomy.registries.FAMILIES`; ``partonomy train`` / ``eval --model`` / ``predict --model``
/ ``convert-checkpoint`` / ``quickstart`` / ``ls`` find everything through it:

* ``config_type`` and ``build(config) -> (SegLMM, SegProcessor)``: the typed model config (the
  ``model:`` section of a training YAML) and the builder that assembles the parts;
* ``presets``: named configs (``tiny`` builds offline in seconds; the real ones need local weights);
* ``trainable_type``: the family's :class:`~partonomy.models.core.trainable.TrainableSpec`
  subclass (the ``trainable:`` section), whose defaults are the family's recipe;
* ``loss_terms``: ``name -> LossTerm(weight, compute)`` (the ``loss.weights`` keys);
* ``converters``: source name -> function converting a released checkpoint directory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from partonomy.errors import ConfigError

if TYPE_CHECKING:
    from partonomy.models.core.losses import LossTerm
    from partonomy.models.core.model import SegLMM
    from partonomy.models.core.processing import SegProcessor


@dataclass(frozen=True)
class Family:
    """One registered family (module docstring).

    Attributes:
        name: the registry key (``plum``).
        description: one line for ``partonomy ls``.
        config_type: the model config dataclass.
        build: ``config -> (model, processor)``; every parameter trainable, on CPU.
        presets: preset name -> zero-argument config factory (``tiny`` is required).
        trainable_type: the trainable-spec dataclass.
        loss_terms: the loss terms and their default weights.
        converters: source name -> ``convert(src, dst, **options)`` for released checkpoints.
        default_options: predictor options this family needs by default (e.g. the choice score).
    """

    name: str
    description: str
    config_type: type
    build: Callable[[Any], tuple[SegLMM, SegProcessor]]
    presets: Mapping[str, Callable[[], Any]]
    trainable_type: type
    loss_terms: Mapping[str, LossTerm]
    converters: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    default_options: Mapping[str, Any] = field(default_factory=dict)

    def preset(self, name: str) -> Any:
        """The config of preset ``name``.

        Raises:
            ConfigError: unknown preset, with a close match if there is one.
        """
        if name not in self.presets:
            import difflib

            close = difflib.get_close_matches(name, self.presets, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"unknown {self.name} preset {name!r}.{hint} Known: {', '.join(self.presets)}"
            )
        return self.presets[name]()


def get_family(name: str) -> Family:
    """The registered family ``name`` (a "did you mean" error otherwise)."""
    from partonomy.registries import FAMILIES

    family: Family = FAMILIES.get(name)
    return family
