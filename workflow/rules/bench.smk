# Benchmarks, model (each cycle's committee) against reference (the reference
# labeller, computed once for all cycles, or the user's reference files):
# E-V curves + elastic constants, enthalpy-pressure curves, Bain path,
# phonons; XRD of every NS run by temperature; the NS phase diagram of the
# final model (off by default). Costs are in the docstrings of nestdb.bench.
from nestdb.config import format_pressure, oracle_spec, phase_diagram_block, run_compositions

BENCH = config["bench"]
PHASE_DIAGRAM_PRESSURES = [format_pressure(p) for p in BENCH["phase_diagram"]["pressures"]]
FINAL_CYCLE = CYCLES[-1]


rule bench_reference:
    output:
        ev="results/bench/reference/ev.csv",
        elastic="results/bench/reference/elastic.json",
        raw=directory("results/bench/reference/raw"),
    params:
        spec=bench_reference_spec(config),
        bench=BENCH,
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
        bench=BENCH,
        element=config["elements"][0],
        model_dir=lambda wc: model_dir(wc.cycle),
    log:
        "logs/bench/cycle{cycle}.log",
    benchmark:
        "results/benchmarks/bench/cycle{cycle}.tsv"
    resources:
        runtime=60,
    conda:
        "../../envs/fit.yaml"
    script:
        "../../scripts/bench.py"


# Enthalpy-pressure curves, Bain path and phonons: one reference job and one
# job per cycle each (`kind` is enthalpy, bain or phonons).
rule bench_property_reference:
    output:
        result="results/bench/reference/{kind}.json",
        raw=directory("results/bench/reference/raw_{kind}"),
    params:
        spec=bench_reference_spec(config),
        bench=BENCH,
        element=config["elements"],  # single-element properties use the first, alloy all
    wildcard_constraints:
        kind="enthalpy|bain|phonons|alloy",
    log:
        "logs/bench/reference_{kind}.log",
    benchmark:
        "results/benchmarks/bench_reference_{kind}.tsv"
    resources:
        runtime=240,
    conda:
        "../../envs/label.yaml"
    script:
        "../../scripts/bench_property_reference.py"


rule bench_property:
    input:
        committee=rules.fit.output.committee,
        reference="results/bench/reference/{kind}.json",
    output:
        result="results/bench/cycle{cycle}/{kind}.json",
        table=report(
            "results/bench/cycle{cycle}/{kind}.csv",
            caption="../report/bench_property.rst",
            category="Benchmarks",
            subcategory="cycle {cycle}",
            labels={"item": "{kind} table"},
        ),
        plot=report(
            "results/bench/cycle{cycle}/{kind}.png",
            caption="../report/bench_property.rst",
            category="Benchmarks",
            subcategory="cycle {cycle}",
            labels={"item": "{kind}"},
        ),
    params:
        bench=BENCH,
        element=config["elements"],  # single-element properties use the first, alloy all
        model_dir=lambda wc: model_dir(wc.cycle),
        title=lambda wc: f"cycle {wc.cycle}: model (solid) vs reference (dashed)",
    wildcard_constraints:
        kind="enthalpy|bain|phonons|alloy",
    log:
        "logs/bench/cycle{cycle}_{kind}.log",
    benchmark:
        "results/benchmarks/bench_{kind}/cycle{cycle}.tsv"
    resources:
        runtime=60,
    conda:
        "../../envs/fit.yaml"
    script:
        "../../scripts/bench_property.py"


rule bench_xrd:
    input:
        traj=rules.ns.output.traj,
        temperatures=rules.analyse.output.temperatures,
    output:
        table="results/bench/cycle{cycle}/xrd/{comp}P{pressure}GPa/xrd.csv",
        plot=report(
            "results/bench/cycle{cycle}/xrd/{comp}P{pressure}GPa/xrd.png",
            caption="../report/xrd.rst",
            category="Benchmarks",
            subcategory="cycle {cycle}",
            labels={"item": "XRD", "composition": "{comp}", "pressure (GPa)": "{pressure}"},
        ),
    params:
        xrd=BENCH["xrd"],
        element=config["elements"][0],
        title=lambda wc: f"cycle {wc.cycle}, {wc.comp}{wc.pressure} GPa",
    log:
        "logs/bench/cycle{cycle}_{comp}P{pressure}GPa_xrd.log",
    benchmark:
        "results/benchmarks/bench_xrd/cycle{cycle}_{comp}P{pressure}GPa.tsv"
    resources:
        runtime=30,
    conda:
        "../../envs/ns.yaml"
    script:
        "../../scripts/bench_xrd.py"


# Alloys (issue 15): first-shell Warren-Cowley order of each run's samples against
# temperature (runs with two or more elements), and the mixing enthalpy of the
# runs of all compositions at one pressure (needs a pure run of every element).
rule bench_sro:
    input:
        traj=rules.ns.output.traj,
        energies=rules.ns.output.energies,
    output:
        table="results/bench/cycle{cycle}/sro/{comp}P{pressure}GPa/sro.csv",
        plot=report(
            "results/bench/cycle{cycle}/sro/{comp}P{pressure}GPa/sro.png",
            caption="../report/sro.rst",
            category="Benchmarks",
            subcategory="cycle {cycle}",
            labels={"item": "short-range order", "composition": "{comp}", "pressure (GPa)": "{pressure}"},
        ),
    params:
        elements=config["elements"],
        grid=config["analyse"],
        title=lambda wc: f"cycle {wc.cycle}, {wc.comp}{wc.pressure} GPa: Warren-Cowley order of the NS samples",
    log:
        "logs/bench/cycle{cycle}_{comp}P{pressure}GPa_sro.log",
    resources:
        runtime=30,
    conda:
        "../../envs/ns.yaml"
    script:
        "../../scripts/bench_sro.py"


rule bench_mixing:
    input:
        tables=lambda wc: [
            f"results/analyse/cycle{wc.cycle}/{comp}P{wc.pressure}GPa/thermo.csv"
            for comp in composition_dirs(config, int(wc.cycle))
        ],
    output:
        table="results/bench/cycle{cycle}/mixing/P{pressure}GPa/mixing.csv",
        plot=report(
            "results/bench/cycle{cycle}/mixing/P{pressure}GPa/mixing.png",
            caption="../report/mixing.rst",
            category="Benchmarks",
            subcategory="cycle {cycle}",
            labels={"item": "mixing enthalpy", "pressure (GPa)": "{pressure}"},
        ),
    params:
        tags=lambda wc: [c.rstrip("/") for c in composition_dirs(config, int(wc.cycle))],
        compositions=lambda wc: run_compositions(config, int(wc.cycle)),
        elements=config["elements"],
        title=lambda wc: f"cycle {wc.cycle}, {wc.pressure} GPa: mixing enthalpy of the NS runs",
    log:
        "logs/bench/cycle{cycle}_P{pressure}GPa_mixing.log",
    resources:
        runtime=10,
    conda:
        "../../envs/ns.yaml"
    script:
        "../../scripts/bench_mixing.py"


# Phase diagram: NS with the final cycle's committee at bench.phase_diagram
# pressures, analysed like the cycle runs, melting line from the C_p peaks.
rule bench_phase_diagram_ns:
    input:
        model=f"{model_dir(FINAL_CYCLE)}/committee.npz",
    output:
        energies="results/bench/phase_diagram/P{pressure}GPa/ns.energies",
        traj="results/bench/phase_diagram/P{pressure}GPa/ns.traj.extxyz",
        final="results/bench/phase_diagram/P{pressure}GPa/ns.final.extxyz",
        summary="results/bench/phase_diagram/P{pressure}GPa/ns.summary.json",
    params:
        block=phase_diagram_block(config),
        cycle=FINAL_CYCLE,
        prefix="results/bench/phase_diagram/P{pressure}GPa/ns",
    log:
        "logs/bench/phase_diagram_P{pressure}GPa_ns.log",
    benchmark:
        "results/benchmarks/bench_phase_diagram_ns/P{pressure}GPa.tsv"
    threads: int(phase_diagram_block(config).get("n_procs", 1))
    resources:
        runtime=720,
    conda:
        "../../envs/ns.yaml"
    script:
        "../../scripts/bench_phase_diagram_ns.py"


rule bench_phase_diagram_analyse:
    input:
        energies=rules.bench_phase_diagram_ns.output.energies,
    output:
        table="results/bench/phase_diagram/P{pressure}GPa/thermo.csv",
        temperatures="results/bench/phase_diagram/P{pressure}GPa/sample_temperatures.csv",
        plot="results/bench/phase_diagram/P{pressure}GPa/thermo.png",
        transitions="results/bench/phase_diagram/P{pressure}GPa/transitions.csv",
    params:
        grid=config["analyse"],
        title=lambda wc: f"phase diagram run, {wc.pressure} GPa",
    log:
        "logs/bench/phase_diagram_P{pressure}GPa_analyse.log",
    resources:
        runtime=30,
    conda:
        "../../envs/ns.yaml"
    script:
        "../../scripts/analyse.py"


rule bench_phase_diagram:
    input:
        tables=expand(
            "results/bench/phase_diagram/P{pressure}GPa/thermo.csv",
            pressure=PHASE_DIAGRAM_PRESSURES,
        ),
        finals=expand(
            "results/bench/phase_diagram/P{pressure}GPa/ns.final.extxyz",
            pressure=PHASE_DIAGRAM_PRESSURES,
        ),
    output:
        melting=report(
            "results/bench/phase_diagram/melting.csv",
            caption="../report/phase_diagram.rst",
            category="Benchmarks",
            subcategory="phase diagram",
            labels={"item": "melting line"},
        ),
        plot=report(
            "results/bench/phase_diagram/phase_diagram.png",
            caption="../report/phase_diagram.rst",
            category="Benchmarks",
            subcategory="phase diagram",
            labels={"item": "P-T diagram"},
        ),
        transitions="results/bench/phase_diagram/transitions.json",
    params:
        pressures=PHASE_DIAGRAM_PRESSURES,
        n_atoms=BENCH["phase_diagram"]["n_atoms"],
    log:
        "logs/bench/phase_diagram.log",
    resources:
        runtime=30,
    conda:
        "../../envs/ns.yaml"
    script:
        "../../scripts/bench_phase_diagram.py"


# Learning curve against an oracle (bench.learning_curve, issue 16): an independent
# test set made by the oracle (label.code potential, or bench.reference), never
# trained on, and every cycle's model on it by phase, pressure and temperature.
LEARNING_CURVE = BENCH.get("learning_curve", {})


rule bench_test_set:
    output:
        frames="results/bench/learning_curve/test_set.extxyz",
        summary="results/bench/learning_curve/test_set.json",
    params:
        oracle=lambda wc: oracle_spec(config),
        composition=ns_block(config, 0)["composition"],
        settings=LEARNING_CURVE.get("test_set", {}),
        ns=lambda wc: {k: v for k, v in config["ns"].items() if k not in ("calculator", "composition")},
    log:
        "logs/bench/test_set.log",
    benchmark:
        "results/benchmarks/bench_test_set.tsv"
    resources:
        runtime=120,
    conda:
        "../../envs/ns.yaml"
    script:
        "../../scripts/bench_test_set.py"


rule bench_learning_curve:
    input:
        test_set=LEARNING_CURVE.get("test_set_file") or rules.bench_test_set.output.frames,
        committees=expand(f"{model_dir('{c}')}/committee.npz", c=CYCLES),
        labels=expand("results/label/cycle{c}/labelled.extxyz", c=CYCLES),
        bench=expand("results/bench/cycle{c}/summary.json", c=CYCLES),
    output:
        table=report(
            "results/bench/learning_curve/learning_curve.csv",
            caption="../report/learning_curve.rst",
            category="Benchmarks",
            subcategory="learning curve",
            labels={"item": "table"},
        ),
        json="results/bench/learning_curve/learning_curve.json",
        plot=report(
            "results/bench/learning_curve/learning_curve.png",
            caption="../report/learning_curve.rst",
            category="Benchmarks",
            subcategory="learning curve",
            labels={"item": "plot"},
        ),
    params:
        n_cycles=len(CYCLES),
        name=LEARNING_CURVE.get("name", "nestdb"),
    log:
        "logs/bench/learning_curve.log",
    benchmark:
        "results/benchmarks/bench_learning_curve.tsv"
    conda:
        "../../envs/fit.yaml"
    script:
        "../../scripts/bench_learning_curve.py"
