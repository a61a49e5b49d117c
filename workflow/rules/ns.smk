# Explore: one constant-pressure nested-sampling run per (cycle, pressure).
# The run works in results/ns/cycle{cycle}/P{pressure}GPa/restart/ (not an
# output, so Snakemake never deletes it) and moves its four files into place
# at the end; a rerun of a killed or timed-out job resumes from the restart
# snapshot there (ns.snapshot_seconds) and ends with the same files.


rule ns:
    input:
        unpack(ns_model_input),
    output:
        energies=f"{ns_prefix('{cycle}', '{pressure}', '{comp}')}.energies",
        traj=f"{ns_prefix('{cycle}', '{pressure}', '{comp}')}.traj.extxyz",
        final=f"{ns_prefix('{cycle}', '{pressure}', '{comp}')}.final.extxyz",
        summary=f"{ns_prefix('{cycle}', '{pressure}', '{comp}')}.summary.json",
    params:
        block=lambda wc: ns_block(config, int(wc.cycle), wc.comp),
        prefix=lambda wc: ns_prefix(wc.cycle, wc.pressure, wc.comp),
    log:
        "logs/ns/cycle{cycle}_{comp}P{pressure}GPa.log",
    benchmark:
        "results/benchmarks/ns/cycle{cycle}_{comp}P{pressure}GPa.tsv"
    threads: lambda wc: int(ns_block(config, int(wc.cycle), wc.comp).get("n_procs", 1))
    resources:
        runtime=720,
    conda:
        "../../envs/ns.yaml"
    script:
        "../../scripts/ns.py"


rule analyse:
    input:
        energies=rules.ns.output.energies,
    output:
        table=report(
            "results/analyse/cycle{cycle}/{comp}P{pressure}GPa/thermo.csv",
            category="Thermodynamics",
            subcategory="cycle {cycle}",
            labels={"composition": "{comp}", "pressure (GPa)": "{pressure}", "item": "table"},
        ),
        temperatures="results/analyse/cycle{cycle}/{comp}P{pressure}GPa/sample_temperatures.csv",
        transitions=report(
            "results/analyse/cycle{cycle}/{comp}P{pressure}GPa/transitions.csv",
            category="Thermodynamics",
            subcategory="cycle {cycle}",
            labels={"composition": "{comp}", "pressure (GPa)": "{pressure}", "item": "C_p peaks"},
        ),
        plot=report(
            "results/analyse/cycle{cycle}/{comp}P{pressure}GPa/thermo.png",
            caption="../report/thermo.rst",
            category="Thermodynamics",
            subcategory="cycle {cycle}",
            labels={"composition": "{comp}", "pressure (GPa)": "{pressure}", "item": "C_p and volume"},
        ),
    params:
        grid=config["analyse"],
        title=lambda wc: f"cycle {wc.cycle}, {wc.comp}{wc.pressure} GPa",
    log:
        "logs/analyse/cycle{cycle}_{comp}P{pressure}GPa.log",
    benchmark:
        "results/benchmarks/analyse/cycle{cycle}_{comp}P{pressure}GPa.tsv"
    resources:
        runtime=30,
    conda:
        "../../envs/ns.yaml"
    script:
        "../../scripts/analyse.py"


# Explore without NS (cycles[i].explore: random_crystals or md): a pool of
# configurations at one pressure with the cycle's model (cycle 0: the classical
# potential; later: the previous cycle's committee), selected by a pool rule
# (select: trust_window or random) in the `select` checkpoint.
rule explore:
    input:
        unpack(ns_model_input),
    output:
        pool="results/explore/cycle{cycle}/{comp}P{pressure}GPa/pool.extxyz",
        summary="results/explore/cycle{cycle}/{comp}P{pressure}GPa/summary.json",
    params:
        block=lambda wc: ns_block(config, int(wc.cycle), wc.comp),
        explore=lambda wc: explore_block(config, int(wc.cycle)),
    log:
        "logs/explore/cycle{cycle}_{comp}P{pressure}GPa.log",
    benchmark:
        "results/benchmarks/explore/cycle{cycle}_{comp}P{pressure}GPa.tsv"
    resources:
        runtime=240,
    conda:
        "../../envs/ns.yaml"
    script:
        "../../scripts/explore.py"
