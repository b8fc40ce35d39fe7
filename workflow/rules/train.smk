# Training and evaluation of every run of the grid: (pair, network, method, seed).


rule train:
    input:
        source="results/data/{pair}/source.h5",
        target="results/data/{pair}/target.h5",
        init=tl_init_checkpoint,
    output:
        model=f"{RUN_DIR}/model.pt",
        sha256=f"{RUN_DIR}/model.pt.sha256",
        history=f"{RUN_DIR}/history.csv",
        summary=f"{RUN_DIR}/train.json",
    log:
        "logs/train/{pair}/{network}/{method}/seed{seed}.log",
    benchmark:
        "benchmarks/train/{pair}/{network}/{method}/seed{seed}.tsv"
    conda:
        ENV
    threads: config["resources"]["train_threads"]
    resources:
        mem_mb=config["resources"]["train_mem_mb"],
        runtime=config["resources"]["train_runtime_min"],
        gpu=config["resources"]["train_gpus"],
    params:
        train=train_call,
    script:
        "../scripts/train.py"


rule evaluate:
    input:
        model=f"{RUN_DIR}/model.pt",
        source="results/data/{pair}/source.h5",
        target="results/data/{pair}/target.h5",
    output:
        metrics=f"{RUN_DIR}/metrics.json",
        predictions=f"{RUN_DIR}/predictions.csv",
    log:
        "logs/evaluate/{pair}/{network}/{method}/seed{seed}.log",
    benchmark:
        "benchmarks/evaluate/{pair}/{network}/{method}/seed{seed}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    script:
        "../scripts/evaluate.py"
