# Tables: our test metrics beside the paper's (Tables 1, 2, B1-B4), as CSV, Markdown and LaTeX.


# Seconds of work: not worth a cluster job's queueing.
localrules:
    table,


rule table:
    input:
        metrics=table_metrics,
    output:
        csv=report(
            "results/tables/{table}.csv",
            caption="../report/table.rst",
            category=lambda w: TABLES[w.table][1],
            subcategory="tables",
            labels=lambda w: {
                "table": w.table,
                "contents": {
                    "metrics": "test metrics, first seed",
                    "confusion": "confusion matrices, first seed",
                    "seeds": "mean ± std over seeds",
                }[TABLES[w.table][0]],
            },
        ),
        md="results/tables/{table}.md",
        tex="results/tables/{table}.tex",
    log:
        "logs/render/{table}.log",
    benchmark:
        "benchmarks/render/{table}.tsv"
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        kind=lambda w: TABLES[w.table][0],
        pair=lambda w: TABLES[w.table][1],
        data_description=lambda w: describe_data(TABLES[w.table][1]),
    script:
        "../scripts/table.py"


# Label-free model selection (deepmerge_da.report.selection_report): what each criterion would have chosen, per pair.
localrules:
    selection,


rule selection:
    input:
        histories=lambda w: run_files("history.csv", pair=w.pair),
    output:
        csv=report(
            "results/tables/selection_{pair}.csv",
            caption="../report/selection.rst",
            category="{pair}",
            subcategory="model selection",
            labels={"output": "table"},
        ),
        md="results/tables/selection_{pair}.md",
        png=report(
            "results/figures/{pair}/selection.png",
            caption="../report/selection.rst",
            category="{pair}",
            subcategory="model selection",
            labels={"output": "figure"},
        ),
    log:
        "logs/render/selection_{pair}.log",
    benchmark:
        "benchmarks/render/selection_{pair}.tsv"
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        data_description=lambda w: describe_data(w.pair),
    script:
        "../scripts/selection.py"


# The environment that made this results/ tree (packages, CPU, threads, commit): remade whenever a run is.
localrules:
    environment,


rule environment:
    input:
        metrics=lambda w: run_files("metrics.json"),
    output:
        report(
            "results/environment.json",
            caption="../report/environment.rst",
            category="Run",
            labels={"file": "environment stamp"},
        ),
    log:
        "logs/render/environment.log",
    benchmark:
        "benchmarks/render/environment.tsv"
    conda:
        ENV
    resources:
        mem_mb=500,
        runtime=5,
    params:
        train_threads=config["resources"]["train_threads"],
    script:
        "../scripts/environment.py"


# How real the sim2real sets look (deepmerge_da.report.realism): the real cutouts of data.sdss.cutout_dir beside the
# synthetic source of this run and a sample of the synthetic SDSS-like target. Only when real cutouts are given.
REALISM_OUTPUTS = (
    expand("results/realism/{name}", name=["table.csv", "table.md", "histograms.csv", "montage.png"])
    if config["data"]["sdss"]["realism_check"]
    and config["data"]["sdss"]["cutout_dir"]
    and SIM2REAL_SOURCE in ("synthetic", "local", "remote")
    else []
)


if REALISM_OUTPUTS:

    localrules:
        realism,

    rule realism:
        input:
            source="results/data/sim2real/raw/source.h5",
        output:
            REALISM_OUTPUTS,
        log:
            "logs/render/realism.log",
        benchmark:
            "benchmarks/render/realism.tsv"
        conda:
            ENV
        resources:
            mem_mb=4000,
            runtime=20,
        params:
            cutout_dir=config["data"]["sdss"]["cutout_dir"],
            max_nonmergers=config["data"]["sdss"]["max_nonmergers"],
            synthetic=config["data"]["pairs"]["sim2real"]["synthetic"],
            seed=config["data"]["seed"],
            n_synthetic=400,  # objects of each synthetic set: enough for stable medians, seconds to render
            dataset=Path(config["data"]["sdss"]["cutout_dir"] or ".").resolve().name,
        script:
            "../scripts/realism.py"
