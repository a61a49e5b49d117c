# Label: one DFT single point per selected configuration, each its own job.
# A failed calculation is written as a `label_status=failed` record (the job
# succeeds), so one bad SCF never stops the cycle; gather_labels applies the
# configured failure budget.


rule label:
    input:
        config="results/select/cycle{cycle}/P{pressure}GPa/configs/{config_id}.extxyz",
    output:
        labelled="results/label/cycle{cycle}/P{pressure}GPa/{config_id}.extxyz",
        raw=directory("results/label/cycle{cycle}/P{pressure}GPa/raw/{config_id}"),
    params:
        spec=json.dumps(labeller_spec(config)),
        launch=mpi_launcher,
        python=PYTHON,
    log:
        "logs/label/cycle{cycle}_P{pressure}GPa/{config_id}.log",
    benchmark:
        "results/benchmarks/label/cycle{cycle}_P{pressure}GPa/{config_id}.tsv"
    threads: 1
    resources:
        runtime=120,
    conda:
        "../../envs/label.yaml"
    shell:
        "{params.launch} {params.python} -m nestdb.cli label {input.config:q} {output.labelled:q} "
        "{output.raw:q} --spec {params.spec:q} --log {log:q}"


rule gather_labels:
    input:
        # Listing every run's candidates shows all selections in a dry run.
        candidates=lambda wc: [
            f"results/select/cycle{wc.cycle}/P{p}GPa/candidates.extxyz"
            for p in cycle_pressures(config, int(wc.cycle))
        ],
        labelled=labelled_configs,
    output:
        database="results/label/cycle{cycle}/labelled.extxyz",
        table=report(
            "results/label/cycle{cycle}/labels.csv",
            caption="../report/labels.rst",
            category="Labels",
            subcategory="cycle {cycle}",
        ),
    params:
        max_failed_fraction=config["label"]["max_failed_fraction"],
    log:
        "logs/label/cycle{cycle}_gather.log",
    benchmark:
        "results/benchmarks/gather_labels/cycle{cycle}.tsv"
    conda:
        "../../envs/label.yaml"
    script:
        "../../scripts/gather_labels.py"
