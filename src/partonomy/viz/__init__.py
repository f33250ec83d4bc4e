"""Seeing results: mask overlays, the self-contained HTML evaluation report and the gradio demo.

Model-independent: nothing here imports :mod:`partonomy.eval` or :mod:`partonomy.models` at module
level. The demo (:mod:`partonomy.viz.demo`) receives its models from the caller; the report
(:mod:`partonomy.viz.report`) reads run directories through :mod:`partonomy.io`.
"""
