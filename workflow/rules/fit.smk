# Fit: a linear-ACE model with a calibrated Bayesian committee to all labels up to this cycle.
rule fit_hyperopt_rows:
    input:
        training=training_sets,
        e0=E0_FILES,
    output:
        f"{hyperopt_dir('{cycle}')}/rows_{{index}}.json",
    wildcard_constraints:
        index=r"\d+",
    params:
        settings=dict(config["fit"], elements=config["elements"]),
    log:
        "logs/fit/cycle{cycle}_hyperopt_rows{index}.log",
    threads: 2
    resources:
        runtime=120,
    conda:
        "../../envs/fit.yaml"
    script:
        "../../scripts/fit_hyperopt.py"


rule fit_hyperopt_worker:
    input:
        training=training_sets,
        e0=E0_FILES,
        rows=[f"{hyperopt_dir('{cycle}')}/rows_{k}.json" for k in range(len(HYPEROPT_CUTOFFS))],
    output:
        f"{hyperopt_dir('{cycle}')}/worker_{{index}}.json",
    wildcard_constraints:
        index=r"\d+",
    params:
        settings=dict(config["fit"], elements=config["elements"]),
    log:
        "logs/fit/cycle{cycle}_hyperopt_worker{index}.log",
    threads: 1
    resources:
        runtime=240,
        # normal equations of every fold: ~170 MB per cutoff and CV repeat at 914 functions
        mem_mb_per_cpu=4000,
    conda:
        "../../envs/fit.yaml"
    script:
        "../../scripts/fit_hyperopt.py"


rule fit_hyperopt:
    input:
        training=training_sets,
        e0=E0_FILES,
        workers=[f"{hyperopt_dir('{cycle}')}/worker_{k}.json" for k in range(int(HYPEROPT.get("n_workers", 1)))],
    output:
        best=f"{hyperopt_dir('{cycle}')}/best.json",
        trials=f"{hyperopt_dir('{cycle}')}/trials.csv",
        summary=report(
            f"{hyperopt_dir('{cycle}')}/summary.md",
            category="Fit",
            subcategory="cycle {cycle}",
            labels={"item": "hyperparameter study"},
        ),
        pareto=report(
            f"{hyperopt_dir('{cycle}')}/pareto.png",
            caption="../report/pareto.rst",
            category="Fit",
            subcategory="cycle {cycle}",
            labels={"item": "hyperparameter Pareto front"},
        ),
    params:
        settings=dict(config["fit"], elements=config["elements"]),
    log:
        "logs/fit/cycle{cycle}_hyperopt.log",
    threads: 1
    resources:
        runtime=30,
    conda:
        "../../envs/fit.yaml"
    script:
        "../../scripts/fit_hyperopt.py"


rule fit:
    input:
        unpack(fit_inputs),
    output:
        potential=f"{model_dir('{cycle}')}/potential.yaml",
        yace=f"{model_dir('{cycle}')}/potential.yace",
        committee=f"{model_dir('{cycle}')}/committee.npz",
        model=f"{model_dir('{cycle}')}/model.json",
        card=report(
            f"{model_dir('{cycle}')}/model_card.md",
            category="Fit",
            subcategory="cycle {cycle}",
            labels={"item": "model card"},
        ),
        metrics=report(
            f"{model_dir('{cycle}')}/metrics.json",
            category="Fit",
            subcategory="cycle {cycle}",
            labels={"item": "metrics"},
        ),
        parity=report(
            f"{model_dir('{cycle}')}/parity.png",
            caption="../report/parity.rst",
            category="Fit",
            subcategory="cycle {cycle}",
            labels={"item": "parity"},
        ),
        calibration=report(
            f"{model_dir('{cycle}')}/calibration.png",
            caption="../report/calibration.rst",
            category="Fit",
            subcategory="cycle {cycle}",
            labels={"item": "committee calibration"},
        ),
    params:
        settings=dict(config["fit"], elements=config["elements"]),
    log:
        "logs/fit/cycle{cycle}.log",
    benchmark:
        "results/benchmarks/fit/cycle{cycle}.tsv"
    threads: 2
    resources:
        runtime=240,
    conda:
        "../../envs/fit.yaml"
    script:
        "../../scripts/fit.py"


# Optional nonlinear route (fit.pacemaker.enabled): one pacemaker job per
# committee member, run from its own environment (envs/pacemaker.yaml; on
# SLURM give fit_pacemaker_member `gpu: 1` and set fit.pacemaker.gpu).
PACEMAKER = config["fit"].get("pacemaker", {})
PACEMAKER_MEMBERS = range(int(PACEMAKER.get("committee_size", 3)))


rule fit_pacemaker_prepare:
    input:
        training=training_sets,
        e0=E0_FILES,
    output:
        split=f"{model_dir('{cycle}')}/pacemaker/split.json",
        inputs=[f"{model_dir('{cycle}')}/pacemaker/member_{k}/input.yaml" for k in PACEMAKER_MEMBERS],
    params:
        settings=dict(config["fit"], elements=config["elements"]),
    log:
        "logs/fit/cycle{cycle}_pacemaker_prepare.log",
    conda:
        "../../envs/fit.yaml"
    script:
        "../../scripts/fit_pacemaker.py"


rule fit_pacemaker_member:
    input:
        f"{model_dir('{cycle}')}/pacemaker/member_{{member}}/input.yaml",
    output:
        potential=f"{model_dir('{cycle}')}/pacemaker/member_{{member}}/output_potential.yaml",
    params:
        command=PACEMAKER.get("command", "pacemaker"),
        activeset=PACEMAKER.get("activeset_command", "pace_activeset"),
    log:
        "logs/fit/cycle{cycle}_pacemaker_member{member}.log",
    benchmark:
        "results/benchmarks/fit/cycle{cycle}_pacemaker_member{member}.tsv"
    threads: 2
    resources:
        runtime=480,
    conda:
        "../../envs/pacemaker.yaml"
    script:
        # the steps of nestdb.fit.pacemaker.run_member (fit, optional low-kappa refit, active set) as
        # argv lists: the command strings are shlex-split, never pasted into a shell
        "../../scripts/fit_pacemaker_member.py"


rule fit_pacemaker:
    input:
        training=training_sets,
        e0=E0_FILES,
        potentials=[f"{model_dir('{cycle}')}/pacemaker/member_{k}/output_potential.yaml" for k in PACEMAKER_MEMBERS],
    output:
        metrics=report(
            f"{model_dir('{cycle}')}/pacemaker/metrics.json",
            category="Fit",
            subcategory="cycle {cycle}",
            labels={"item": "pacemaker metrics"},
        ),
        parity=f"{model_dir('{cycle}')}/pacemaker/parity.png",
        committee=f"{model_dir('{cycle}')}/pacemaker/committee.json",
    params:
        settings=dict(config["fit"], elements=config["elements"]),
    log:
        "logs/fit/cycle{cycle}_pacemaker.log",
    conda:
        "../../envs/fit.yaml"
    script:
        "../../scripts/fit_pacemaker.py"
