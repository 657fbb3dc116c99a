"""Data stage: simulate -> split -> pack.

Takes the config's classes (a simulator and its parameters each) and produces
`results/images/all/{class}/shard-{n}/*.png` (`simulate`, with the simulators of `simulators`
and the PNG writer of `png`), the stratified `results/images/{train,validation}/{class}/` folders
and `manifest.tsv` (`split`), and the uint8 N×H×W×1 arrays `results/packed/{split}/` (`pack`),
which training reads by memory map (`arrays`).
"""
