"""Test-session settings shared by every module.

OpenMP threads that spin while idle make torch 10-20x slower when another process (a
``transformers serve`` subprocess, a killed-and-resumed profile) shares the 2 CPU cores, so
the tests run torch with passive waits, as ``ttc profile`` does. It must be set before torch
initializes OpenMP, hence here.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
