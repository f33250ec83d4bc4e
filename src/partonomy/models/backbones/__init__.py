"""Language-vision and segmentation backbones: HF ``LlavaForConditionalGeneration`` and HF ``SamModel``.

Each backbone has a typed config (tiny random sizes when ``pretrained`` is None), a builder, and a
key mapping from the original checkpoint layout (LLaVA v1, segment-anything) to the HF one.
Nothing heavy is imported here: import the submodules.

* :mod:`partonomy.models.backbones.llava`: ``LlavaConfig``, ``load_tokenizer``, ``build_llava``.
* :mod:`partonomy.models.backbones.sam`: ``SamConfig``, ``build_sam``.
* :mod:`partonomy.models.backbones.llava_v1_layout`: LLaVA v1 keys/config -> HF.
* :mod:`partonomy.models.backbones.sam_layout`: segment-anything keys -> HF ``SamModel``.
"""
