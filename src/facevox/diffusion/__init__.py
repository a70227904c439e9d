"""Flow matching: the probability path, timestep sampling and sigma schedules, solvers, guidance.

The backbone predicts velocity; this package owns everything about time (the path in
:mod:`facevox.diffusion.path`, solvers and guidance beside it). Nothing here knows the network.
"""
