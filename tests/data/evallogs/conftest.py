"""The scripts here are inputs of lm-eval and Inspect AI, not tests: pytest imports none of them."""

collect_ignore_glob = ["*.py"]
