"""GLaMM (Rasheed et al., CVPR 2024) as a family: LISA's ``[SEG]`` decoding on a LLaVA-1.5-style
backbone, with ``<p> ... </p>`` phrase tags, GLaMM's prompt prefix and a region encoder for
``<bbox>`` inputs.

Modules: ``config`` (GlammConfig), ``builders`` (build_glamm, presets), ``region`` (the region
encoder), ``trainable``, ``family``. Nothing is imported here.
"""
