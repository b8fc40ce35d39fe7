# Figures of the paper, drawn from the run outputs (deepmerge_da.report.figures), and the training curves of
# every run. Which runs a figure compares is chosen in common.smk (figure_outputs); how it is drawn lives in the package.


wildcard_constraints:
    summary="metrics|roc|scores",


# Seconds of plotting each: not worth a cluster job's queueing (t-SNE and Grad-CAM load models: cluster jobs).
localrules:
    figure_examples,
    figure_summary,
    figure_training_curves,


rule figure_examples:
    input:
        source="results/data/{pair}/source.h5",
        target="results/data/{pair}/target.h5",
    output:
        png=report(
            "results/figures/{pair}/examples.png",
            caption="../report/examples.rst",
            category="{pair}",
            subcategory="data",
            labels={"figure": "example images"},
        ),
        pdf="results/figures/{pair}/examples.pdf",
    log:
        "logs/figures/{pair}/examples.log",
    benchmark:
        "benchmarks/figures/{pair}/examples.tsv"
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        **caption_params("examples"),
    script:
        "../scripts/figure_examples.py"


rule figure_summary:
    input:
        # Bars read every seed's metrics; ROC curves and score histograms the lowest seed's predictions.
        metrics=lambda w: run_files("metrics.json", pair=w.pair, network=w.network) if w.summary == "metrics" else [],
        predictions=lambda w: (
            run_files("predictions.csv", pair=w.pair, network=w.network, first_seed_only=True)
            if w.summary != "metrics"
            else []
        ),
    output:
        png=report(
            "results/figures/{pair}/{network}_{summary}.png",
            caption="../report/summary.rst",
            category="{pair}",
            subcategory="test metrics",
            labels={"network": "{network}", "figure": "{summary}"},
        ),
        pdf="results/figures/{pair}/{network}_{summary}.pdf",
    log:
        "logs/figures/{pair}/{network}_{summary}.log",
    benchmark:
        "benchmarks/figures/{pair}/{network}_{summary}.tsv"
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        **caption_params("summary"),
        methods=lambda w: config["experiments"][w.pair]["methods"],
    script:
        "../scripts/figure_summary.py"


rule figure_tsne:
    input:
        models=lambda w: list(first_seed_models(w.pair, TSNE_METHODS).values()),
        source="results/data/{pair}/source.h5",
        target="results/data/{pair}/target.h5",
    output:
        png=report(
            "results/figures/{pair}/tsne.png",
            caption="../report/tsne.rst",
            category="{pair}",
            subcategory="latent space and attention",
            labels={"figure": "t-SNE"},
        ),
        pdf="results/figures/{pair}/tsne.pdf",
    log:
        "logs/figures/{pair}/tsne.log",
    benchmark:
        "benchmarks/figures/{pair}/tsne.tsv"
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        **caption_params("tsne"),
        checkpoints=lambda w: {"before training": None, **first_seed_models(w.pair, TSNE_METHODS)},
        seed=config["data"]["seed"],
    script:
        "../scripts/figure_tsne.py"


rule figure_gradcam:
    input:
        models=lambda w: list(first_seed_models(w.pair, GRADCAM_METHODS[w.pair]).values()),
        source="results/data/{pair}/source.h5",
        target="results/data/{pair}/target.h5",
    output:
        png=report(
            "results/figures/{pair}/gradcam.png",
            caption="../report/gradcam.rst",
            category="{pair}",
            subcategory="latent space and attention",
            labels={"figure": "Grad-CAM"},
        ),
        pdf="results/figures/{pair}/gradcam.pdf",
    log:
        "logs/figures/{pair}/gradcam.log",
    benchmark:
        "benchmarks/figures/{pair}/gradcam.tsv"
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        **caption_params("gradcam"),
        checkpoints=lambda w: first_seed_models(w.pair, GRADCAM_METHODS[w.pair]),
        seed=config["data"]["seed"],
    script:
        "../scripts/figure_gradcam.py"


rule figure_training_curves:
    input:
        history=f"{RUN_DIR}/history.csv",
    output:
        png=report(
            "results/figures/{pair}/training/{network}_{method}_seed{seed}.png",
            caption="../report/training_curves.rst",
            category="{pair}",
            subcategory="training curves",
            labels={"network": "{network}", "method": "{method}", "seed": "{seed}"},
        ),
    log:
        "logs/figures/{pair}/training/{network}_{method}_seed{seed}.log",
    benchmark:
        "benchmarks/figures/{pair}/training/{network}_{method}_seed{seed}.tsv"
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        **caption_params("training"),
    script:
        "../scripts/figure_training_curves.py"
