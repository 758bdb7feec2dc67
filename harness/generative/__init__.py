"""A generative retriever (MINDER's multiview identifiers, SEAL's scoring) and its LTRGR training.

- :mod:`~harness.generative.index`: the identifier index of a corpus (suffix array);
- :mod:`~harness.generative.model`: sequence-to-sequence models by name, the views' inputs and targets;
- :mod:`~harness.generative.decode`: constrained beam search and SEAL/MINDER passage scores;
- :mod:`~harness.generative.train`: phase 1 (generation) and phase 2 (LTRGR) training.
"""
