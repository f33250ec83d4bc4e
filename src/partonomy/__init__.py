"""partonomy: the PARTONOMY benchmark, the PLUM model and baselines for part-level grounding in LMMs.

Importing the package has no side effects: nothing is loaded, configured or registered globally.
"""

__version__ = "0.1.0"
