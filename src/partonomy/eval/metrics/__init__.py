"""Metrics of the PARTONOMY benchmark: a per-sample statistic plus a reducer for each.

* :mod:`~partonomy.eval.metrics.conventions`: every edge-case rule (empty union, missing mask,
  ties, matching strategies), in one place.
* :mod:`~partonomy.eval.metrics.text`: chosen answer, accuracy, part precision / recall / F1.
* :mod:`~partonomy.eval.metrics.masks`: per-pair intersection / union, gIoU and cIoU reducers.
* :mod:`~partonomy.eval.metrics.matching`: pairing predicted masks with ground-truth parts.
* :mod:`~partonomy.eval.metrics.inputs`: checks of scores and mask sizes, ground-truth unions.

The :class:`~partonomy.eval.metrics.base.Metric` objects are registered in
:data:`partonomy.registries.METRICS` under the names they carry in ``results.json``.
"""
