"""Plumbing every package uses, below all three (``common`` <- ``fitting`` <- ``profiling`` <-
``planner``): the atomic, fsync-ed file writer (:mod:`common.atomic`) and the one progress
display (:mod:`common.progress`). Stdlib only; imports none of the three packages."""
