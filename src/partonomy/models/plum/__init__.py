"""PLUM: LLaVA + SAM with BIO span tagging and a mask-feedback loop (the paper's model).

Modules (modeling engineer): ``config`` (PlumConfig), ``builders`` (build_plum, tiny_config,
PRESETS), ``processing`` (PlumProcessor, PlumExample, PlumBatch), ``bio`` (targets and span
grouping), ``span_extractor``, ``span_query``, ``feedback``, ``modeling`` (PlumModel, PlumOutput),
``losses`` (plum_loss, LossWeights, teacher_hidden_states), ``checkpoint_layouts`` (original
checkpoint key mappings). Nothing is imported here; import the submodules.

Changelog of the agreed interfaces (newest first):

* ``PlumModel.segment_batch(hidden, spans, image_embeddings, original_sizes, sam_input_sizes)``
  segments several conversations at once (the k-th spans of all conversations share one decoder
  call; histories stay per conversation); ``forward`` uses it, ``segment``/``segment_spans`` are
  the one-conversation case. ``MaskFeedbackPooler`` also takes ``(R, n, ...)`` histories.
* Additions (nothing removed or renamed): ``LlavaConfig.vision_tower`` (separate CLIP dir for v1
  checkpoints) and ``.dtype``; ``SamConfig.dtype``; ``PlumConfig.feedback_heads`` and ``.seed``
  (init seed, forked RNG). ``llava.tokenizer`` also accepts ``"pretrained"`` (the checkpoint's own).
* ``PlumExample``/``PlumBatch`` also carry ``span_parts`` (the part of each span),
  ``answer_start``/``answer_end`` and ``image_key`` (examples sharing a key share one image in a
  batch: ``PlumBatch.pixel_values``/``sam_pixel_values`` are per distinct image, ``(N, ...)``, and
  ``image_index`` ``(B,)`` maps conversations to them). ``PlumProcessor.encode_choices`` encodes the
  answer choices of one question with one image preprocessing.
* ``bio_labels`` cover the last answer only: O/B/I there, -100 on image, prompt, earlier turns and
  padding. ``PlumModel.tag_spans(hidden, attention_mask)``: the second argument is the key mask
  (attention mask, image tokens included, as in the released code); returns the logits tensor.
* ``PlumOutput`` also has ``spans`` (what was segmented) and ``iou_predictions``.
  ``PlumModel.segment_spans`` returns queries, low-res masks and masks; ``segment`` the masks only.
  ``PlumModel.language_model(input_ids, attention_mask, pixel_values, image_index)`` -> (hidden, logits).
"""
