"""Strata's benchmarks, run by `strata bench`: each compares the served path with a baseline
measured in the same run, so the figures are ratios that hold across machines."""
