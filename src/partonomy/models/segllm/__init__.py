"""SegLLM (Wang et al., ICLR 2025) as a family: multi-round reasoning segmentation with mask-aware
decoding and re-encoded earlier masks.

Modules: ``config`` (SegLLMConfig), ``decoder`` (the HIPIE-like query mask head on transformers'
Mask2Former parts), ``reencode`` (``<seg_input>``: earlier masks back into the LLM), ``prompts``
(``<seg>`` -> 8 pseudo-text tokens), ``targets`` (one round per part), ``model``, ``losses``,
``trainable``, ``builders`` (presets), ``predictor`` (ground-truth or auto-regressive re-encoding
at evaluation), ``family``. Nothing is imported here.
"""
