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
            labels=lambda w: {"table": w.table, "contents": {"metrics": "test metrics, first seed",
                                                           "confusion": "confusion matrices, first seed",
                                                           "seeds": "mean ± std over seeds"}[TABLES[w.table][0]]},
        ),
        md="results/tables/{table}.md",
        tex="results/tables/{table}.tex",
    params:
        kind=lambda w: TABLES[w.table][0],
        pair=lambda w: TABLES[w.table][1],
        data_description=lambda w: describe_data(TABLES[w.table][1]),
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


# Label-free model selection (deepmerge_da.report.selection_report): what each criterion would have chosen, per pair.
localrules:
    selection,


rule selection:
    input:
        histories=lambda w: run_files("history.csv", pair=w.pair),
    output:
        csv=report("results/tables/selection_{pair}.csv", caption="../report/selection.rst", category="{pair}",
                   subcategory="model selection", labels={"output": "table"}),
        md="results/tables/selection_{pair}.md",
        png=report("results/figures/{pair}/selection.png", caption="../report/selection.rst", category="{pair}",
                   subcategory="model selection", labels={"output": "figure"}),
    params:
        data_description=lambda w: describe_data(w.pair),
    log:
        "logs/render/selection_{pair}.log",
    benchmark:
        "benchmarks/render/selection_{pair}.tsv"
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/selection.py"


# The environment that made this results/ tree (packages, CPU, threads, commit): remade whenever a run is.
localrules:
    environment,


rule environment:
    input:
        metrics=lambda w: run_files("metrics.json"),
    output:
        report("results/environment.json", caption="../report/environment.rst", category="Run",
               labels={"file": "environment stamp"}),
    params:
        train_threads=config["resources"]["train_threads"],
    log:
        "logs/render/environment.log",
    benchmark:
        "benchmarks/render/environment.tsv"
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        ENV
    script:
        "../scripts/environment.py"
