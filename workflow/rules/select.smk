# Select: the cycle's rule picks configurations from each run's culled samples
# (or, for cycles exploring with random_crystals or md, from the pool of rule
# `explore`). A checkpoint, because how many configurations (and so label jobs)
# there are is known only after the run.


def select_inputs(wildcards):
    """NS outputs or the exploration pool; the previous committee for a trust window on NS samples."""
    cycle = int(wildcards.cycle)
    if explore_kind(config, cycle) != "ns":
        return {"pool": f"results/explore/cycle{cycle}/{wildcards.comp}P{wildcards.pressure}GPa/pool.extxyz"}
    prefix = ns_prefix(cycle, wildcards.pressure, wildcards.comp)
    files = {
        "traj": f"{prefix}.traj.extxyz",
        "summary": f"{prefix}.summary.json",
        "final": f"{prefix}.final.extxyz",
        "temperatures": f"results/analyse/cycle{cycle}/{wildcards.comp}P{wildcards.pressure}GPa/sample_temperatures.csv",
    }
    # NS samples carry the committee STD only where the run asked for it; the rest are scored here
    if select_rule(config, cycle)["kind"] == "trust_window":
        files["model"] = f"{model_dir(cycle - 1)}/committee.npz"
    return files


checkpoint select:
    input:
        unpack(select_inputs),
    output:
        candidates="results/select/cycle{cycle}/{comp}P{pressure}GPa/candidates.extxyz",
        configs=directory("results/select/cycle{cycle}/{comp}P{pressure}GPa/configs"),
        plot=report(
            "results/select/cycle{cycle}/{comp}P{pressure}GPa/selection.png",
            caption="../report/selection.rst",
            category="Selection",
            subcategory="cycle {cycle}",
            labels={"composition": "{comp}", "pressure (GPa)": "{pressure}", "item": "enthalpy"},
        ),
        order_plot=report(
            "results/select/cycle{cycle}/{comp}P{pressure}GPa/order_q6_w6.png",
            caption="../report/order.rst",
            category="Selection",
            subcategory="cycle {cycle}",
            labels={"composition": "{comp}", "pressure (GPa)": "{pressure}", "item": "Q6-W6"},
        ),
    params:
        rule=lambda wc: select_rule(config, int(wc.cycle)),
        weight_alpha=config["select"]["weight_alpha"],
        weight_rescale=config["select"]["weight_rescale"],
    log:
        "logs/select/cycle{cycle}_{comp}P{pressure}GPa.log",
    benchmark:
        "results/benchmarks/select/cycle{cycle}_{comp}P{pressure}GPa.tsv"
    resources:
        runtime=30,
    conda:
        "../../envs/ns.yaml"
    script:
        "../../scripts/select.py"
