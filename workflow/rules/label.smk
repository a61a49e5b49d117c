# Label: one DFT single point per selected configuration, each its own job
# (group "label": bundle small ones with `--group-components label=20`).
# A failed calculation is written as a `label_status=failed` record (the job
# succeeds), so one bad SCF never stops the cycle; gather_labels applies the
# configured failure budget and writes the failures table. Labels are cached
# by structure + settings (label.cache_dir): rerunning with
# `--forcerun label` recalculates only what failed.
from nestdb.label.driver import LabelPolicy


rule label:
    input:
        config="results/select/cycle{cycle}/{comp}P{pressure}GPa/configs/{config_id}.extxyz",
    output:
        labelled="results/label/cycle{cycle}/{comp}P{pressure}GPa/{config_id}.extxyz",
        raw=directory("results/label/cycle{cycle}/{comp}P{pressure}GPa/raw/{config_id}"),
    params:
        spec=json.dumps(labeller_spec(config)),
        policy=LabelPolicy.from_config(config["label"]).to_json(),
        launch=mpi_launcher,
        external=external_launch,
        python=PYTHON,
    log:
        "logs/label/cycle{cycle}_{comp}P{pressure}GPa/{config_id}.log",
    benchmark:
        "results/benchmarks/label/cycle{cycle}_{comp}P{pressure}GPa/{config_id}.tsv"
    group:
        "label"
    threads: 1
    resources:
        runtime=120,
    conda:
        "../../envs/label.yaml"
    shell:
        "{params.launch} {params.python} -m nestdb.cli label {input.config:q} {output.labelled:q} "
        "{output.raw:q} --spec {params.spec:q} --policy {params.policy:q} {params.external} --log {log:q}"


rule label_isolated_atom:
    # E0 of one element with the labelling settings; the fit uses it for elements
    # with `fit.reference_energies: {X: isolated_atom}` (or target it: results/label/e0/Cu.json).
    output:
        energy="results/label/e0/{element}.json",
        raw=directory("results/label/e0/raw/{element}"),
    params:
        spec=labeller_spec(config),
        policy=LabelPolicy.from_config(config["label"]).__dict__,
        box=config["label"]["isolated_atom_box"],
    wildcard_constraints:
        element=r"[A-Z][a-z]?",
    log:
        "logs/label/e0_{element}.log",
    benchmark:
        "results/benchmarks/label/e0_{element}.tsv"
    resources:
        runtime=120,
    conda:
        "../../envs/label.yaml"
    script:
        "../../scripts/label_isolated_atom.py"


rule gather_labels:
    input:
        # Listing every run's candidates shows all selections in a dry run.
        candidates=lambda wc: [
            f"results/select/cycle{wc.cycle}/{comp}P{p}GPa/candidates.extxyz"
            for comp, p in cycle_runs(config, int(wc.cycle))
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
        failures=report(
            "results/label/cycle{cycle}/failures.tsv",
            caption="../report/label_failures.rst",
            category="Labels",
            subcategory="cycle {cycle}",
        ),
        cost=report(
            "results/label/cycle{cycle}/cost.csv",
            caption="../report/label_cost.rst",
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
