rule split_dataset:
    input:
        shards=[d for klass in CLASSES for d in shard_dirs(klass)],
        code=library_files("split.py"),
    output:
        train=directory("results/images/train"),
        validation=directory("results/images/validation"),
        manifest="results/images/manifest.tsv",
    log:
        "results/logs/split.log",
    benchmark:
        "results/benchmarks/split.tsv"
    conda:
        "../../envs/data.yaml"
    params:
        validation_fraction=config["validation_fraction"],
        seed=config["seed"],
    script:
        "../scripts/split.py"
