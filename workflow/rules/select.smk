# Select: the cycle's rule picks configurations from each run's culled samples.
# A checkpoint, because how many configurations (and so label jobs) there are
# is known only after the run.


checkpoint select:
    input:
        traj=rules.ns.output.traj,
        summary=rules.ns.output.summary,
        final=rules.ns.output.final,
        temperatures=rules.analyse.output.temperatures,
    output:
        candidates="results/select/cycle{cycle}/P{pressure}GPa/candidates.extxyz",
        configs=directory("results/select/cycle{cycle}/P{pressure}GPa/configs"),
        plot=report(
            "results/select/cycle{cycle}/P{pressure}GPa/selection.png",
            caption="../report/selection.rst",
            category="Selection",
            subcategory="cycle {cycle}",
            labels={"pressure (GPa)": "{pressure}"},
        ),
    params:
        rule=lambda wc: select_rule(config, int(wc.cycle)),
        weight_alpha=config["select"]["weight_alpha"],
    log:
        "logs/select/cycle{cycle}_P{pressure}GPa.log",
    benchmark:
        "results/benchmarks/select/cycle{cycle}_P{pressure}GPa.tsv"
    conda:
        "../../envs/ns.yaml"
    script:
        "../../scripts/select.py"
