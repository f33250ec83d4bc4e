"""Real-dataset readers, one module per dataset.

Each module exposes a :class:`~partonomy.data.sources.base.SourceInfo` (registered in
:data:`partonomy.registries.SOURCES`): part datasets build PARTONOMY descriptors
(``partonomy build-descriptor``), stage-1 sources yield
:class:`~partonomy.data.sample.TrainingSample` for the mixture (:mod:`partonomy.data.mixture`),
and every source can be checked by ``partonomy data check``. See ``docs/data.md``.
"""
