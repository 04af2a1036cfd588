"""Which option to pick: single-objective search, Pareto fronts, allocation, adaptive policies."""
