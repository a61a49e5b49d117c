# Benchmark: E-V curves and elastic constants, model (per cycle) against the
# reference labeller (computed once for all cycles).


rule bench_reference:
    output:
        ev="results/bench/reference/ev.csv",
        elastic="results/bench/reference/elastic.json",
        raw=directory("results/bench/reference/raw"),
    params:
        spec=bench_reference_spec(config),
        bench=config["bench"],
        element=config["elements"][0],
    log:
        "logs/bench/reference.log",
    benchmark:
        "results/benchmarks/bench_reference.tsv"
    resources:
        runtime=240,
    conda:
        "../../envs/label.yaml"
    script:
        "../../scripts/bench_reference.py"


rule bench:
    input:
        committee=rules.fit.output.committee,
        reference_ev=rules.bench_reference.output.ev,
        reference_elastic=rules.bench_reference.output.elastic,
    output:
        ev="results/bench/cycle{cycle}/ev.csv",
        ev_plot=report(
            "results/bench/cycle{cycle}/ev.png",
            caption="../report/ev.rst",
            category="Benchmarks",
            subcategory="cycle {cycle}",
            labels={"item": "E-V curves"},
        ),
        elastic=report(
            "results/bench/cycle{cycle}/elastic.csv",
            caption="../report/elastic.rst",
            category="Benchmarks",
            subcategory="cycle {cycle}",
            labels={"item": "elastic constants"},
        ),
        summary="results/bench/cycle{cycle}/summary.json",
    params:
        bench=config["bench"],
        element=config["elements"][0],
        model_dir=lambda wc: model_dir(wc.cycle),
    log:
        "logs/bench/cycle{cycle}.log",
    benchmark:
        "results/benchmarks/bench/cycle{cycle}.tsv"
    conda:
        "../../envs/fit.yaml"
    script:
        "../../scripts/bench.py"
