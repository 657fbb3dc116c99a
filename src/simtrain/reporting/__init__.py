"""Reporting stage: every run's outputs -> the answer to "which networks help?".

Takes `results/runs/*/` and the packed arrays; produces `results/comparison.tsv/.md`
(`comparison`, with the tests of `statistics` over runs read by `run_results`), the per-run
and comparison figures (`plots`) and the sample grids; `artifacts` is what the rules call.
"""
