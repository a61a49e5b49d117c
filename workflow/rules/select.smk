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
            labels={"pressure (GPa)": "{pressure}", "item": "enthalpy"},
        ),
        order_plot=report(
            "results/select/cycle{cycle}/P{pressure}GPa/order_q6_w6.png",
            caption="../report/order.rst",
            category="Selection",
            subcategory="cycle {cycle}",
            labels={"pressure (GPa)": "{pressure}", "item": "Q6-W6"},
        ),
    params:
        rule=lambda wc: select_rule(config, int(wc.cycle)),
        weight_alpha=config["select"]["weight_alpha"],
        weight_rescale=config["select"]["weight_rescale"],
    log:
        "logs/select/cycle{cycle}_P{pressure}GPa.log",
    benchmark:
        "results/benchmarks/select/cycle{cycle}_P{pressure}GPa.tsv"
    resources:
        runtime=30,
    conda:
        "../../envs/ns.yaml"
    script:
        "../../scripts/select.py"
