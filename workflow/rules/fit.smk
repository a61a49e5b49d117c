# Fit: a linear-ACE Bayesian committee to all labels up to this cycle.


rule fit:
    input:
        training_sets,
    output:
        potential=f"{model_dir('{cycle}')}/potential.yaml",
        committee=f"{model_dir('{cycle}')}/committee.npz",
        model=f"{model_dir('{cycle}')}/model.json",
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
