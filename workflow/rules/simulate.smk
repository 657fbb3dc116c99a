rule simulate_shard:
    input:
        code=library_files("simulate.py"),
        simulator=simulator_files,
    output:
        directory("results/images/all/{klass}/shard-{shard}"),
    log:
        "results/logs/simulate/{klass}-{shard}.log",
    benchmark:
        "results/benchmarks/simulate/{klass}-{shard}.tsv"
    wildcard_constraints:
        klass=_one_of(SIMULATED_CLASSES),
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=1000,
    params:
        simulator=lambda w: config["classes"][w.klass]["simulator"],
        simulator_params=lambda w: config["classes"][w.klass].get("params", {}),
        seed=config["seed"],
        image_size=config["image_size"],
        images_per_class=config["images_per_class"],
        images_per_shard=config["images_per_shard"],
    script:
        "../scripts/simulate.py"
