rule pack_split:
    input:
        images="results/images/{split}",
        manifest="results/images/manifest.tsv",
        code=library_files("pack.py"),
    output:
        images="results/packed/{split}/images.npy",
        labels="results/packed/{split}/labels.npy",
        classes="results/packed/{split}/classes.json",
    log:
        "results/logs/pack/{split}.log",
    benchmark:
        "results/benchmarks/pack/{split}.tsv"
    conda:
        "../../envs/data.yaml"
    threads: 2
    params:
        classes=CLASSES,
        image_size=config["image_size"],
        bit_depth=config["bit_depth"],
    script:
        "../scripts/pack.py"
