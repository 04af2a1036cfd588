"""Test-session settings shared by every module.

OpenMP threads that spin while idle make torch 10-20x slower when another process (a
``transformers serve`` subprocess, a killed-and-resumed profile) shares the 2 CPU cores, so
the tests run torch with passive waits, as ``ttc profile`` does. It must be set before torch
initializes OpenMP, hence here.

Progress displays are off (``TTC_PROGRESS=0``): commands print them on stderr, which the CLI
tests read together with the JSON on stdout; the tests of progress turn them on.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TTC_PROGRESS", "0")
