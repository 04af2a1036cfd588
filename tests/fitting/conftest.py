"""Tests of :mod:`fitting`: the samples schema, importer, all-k estimators, laws, law
selection, the question bootstrap and the fitting pipeline. Nothing here imports torch,
:mod:`profiling` or :mod:`planner`."""
