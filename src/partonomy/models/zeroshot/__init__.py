"""Zero-shot benchmark models built from off-the-shelf HF checkpoints, nothing trained.

* :mod:`partonomy.models.zeroshot.hf_vlm`: ``--model hf_vlm``: any HF VLM scores the answer
  choices (text accuracy only, no masks).
* :mod:`partonomy.models.zeroshot.sam3`: SAM 3 as a text-prompted part segmenter.
* :mod:`partonomy.models.zeroshot.vlm_sam3`: ``--model vlm_sam3``: the VLM's scores plus SAM 3
  masks of the correct answer's parts.
"""
