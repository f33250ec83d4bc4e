"""Question generation for Explanatory Part Segmentation (``partonomy generate-qa``, ``split``).

Modules, one job each:

* :mod:`~partonomy.qa.templates`: every question and answer sentence (one definition per fact).
* :mod:`~partonomy.qa.comparator`: exact or synonym-aware part comparison (a small Protocol).
* :mod:`~partonomy.qa.concepts`: the concept index (object -> parts) and per-image context.
* :mod:`~partonomy.qa.cooccurrence`: the per-part logistic regressions behind the part prior.
* :mod:`~partonomy.qa.samplers`: the part sampler (distractor parts) and the object sampler.
* :mod:`~partonomy.qa.embedder`: text embedders for the object sampler (offline MiniLM by default).
* :mod:`~partonomy.qa.mutation`: the 4 wrong answers, by add / delete / replace.
* one module per question type (registered in :data:`partonomy.registries.QUESTION_TYPES`):
  :mod:`~partonomy.qa.identification`, :mod:`~partonomy.qa.intersection`,
  :mod:`~partonomy.qa.exclusion`, :mod:`~partonomy.qa.difference`, :mod:`~partonomy.qa.whole_part`.
* :mod:`~partonomy.qa.generate`: :func:`~partonomy.qa.generate.generate_qa`, the whole run.
* :mod:`~partonomy.qa.split`: the stratified train/val split by image.

Nothing is imported here, so ``import partonomy.qa`` stays cheap.
"""
