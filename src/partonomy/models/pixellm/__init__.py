"""PixelLM (Ren et al., CVPR 2024) as a family: no SAM. A codebook of ``seg_token_num x scales``
tokens per target; their hidden states, projected to 256 and fused per scale, prompt a light
multi-scale decoder trained from scratch on two CLIP layers.

Modules: ``config`` (PixelLMConfig), ``codebook`` (target scheme and prompt source), ``decoder``
(the multi-scale mask head), ``vision`` (448 preprocessing, the model's CLIP paths), ``builders``
(build_pixellm, presets), ``losses``, ``trainable``, ``family``. Nothing is imported here.
"""
