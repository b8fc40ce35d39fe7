# Training and evaluation of every run of the grid: (pair, network, method, seed). One job per run: the script
# trains, then evaluates the checkpoint on the source and target test splits in the same process (one Python/PyTorch
# start-up, one log and one benchmark file per run).


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
        metrics=f"{RUN_DIR}/metrics.json",
        predictions=f"{RUN_DIR}/predictions.csv",
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
