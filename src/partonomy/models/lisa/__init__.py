"""LISA (Lai et al., CVPR 2024) as a family: ``[SEG]`` hidden state -> MLP -> SAM's sparse prompt.

Modules: ``config`` (LisaConfig), ``builders`` (build_lisa, presets), ``losses``, ``trainable``,
``family`` (the registered :class:`~partonomy.models.core.family.Family`). Nothing is imported here.
"""
