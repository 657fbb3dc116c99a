# A class with a folder instead of a simulator: its real images, converted in shards of
# ingest.images_per_shard into the results/images/all/{klass}/shard-{n}/ PNGs simulate writes.
rule ingest_shard:
    input:
        code=library_files("ingest.py"),
    output:
        directory("results/images/all/{klass}/shard-{shard}"),
    log:
        "results/logs/ingest/{klass}-{shard}.log",
    benchmark:
        "results/benchmarks/ingest/{klass}-{shard}.tsv"
    wildcard_constraints:
        klass=_one_of(FOLDER_CLASSES),
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=1000,
    params:
        folder=lambda w: config["classes"][w.klass]["folder"],
        # Names, sizes and times of the folder's files: one changed file reruns this class.
        fingerprint=lambda w: folder_fingerprint(w.klass),
        images_per_shard=config["ingest"]["images_per_shard"],
        conversion=conversion_settings(),
    script:
        "../scripts/ingest.py"
