# Tables: our test metrics beside the paper's.

# Seconds of work: not worth a cluster job's queueing.
localrules:
    table,



rule table:
    input:
        metrics=lambda w: [f"{RUN_DIR}/metrics.json".format(**r) for r in runs(PAIR_OF_TABLE[w.table])],
    output:
        csv="results/tables/{table}.csv",
        md="results/tables/{table}.md",
    params:
        pair=lambda w: PAIR_OF_TABLE[w.table],
        data_description=lambda w: describe_data(PAIR_OF_TABLE[w.table]),
    log:
        "logs/render/{table}.log",
    benchmark:
        "benchmarks/render/{table}.tsv"
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/table.py"
