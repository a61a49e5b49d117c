"""Snakemake entry point of rule `bench_phase_diagram`: melting line and P-T plot."""
from nestdb.bench.sampling import melting_line
from nestdb.stages import main_guard

main_guard(
    melting_line,
    {float(p): path for p, path in zip(snakemake.params.pressures, snakemake.input.tables)},
    int(snakemake.params.n_atoms),
    snakemake.output.melting,
    snakemake.output.plot,
    json_path=snakemake.output.transitions,
    finals={float(p): path for p, path in zip(snakemake.params.pressures, snakemake.input.finals)},
    log_path=snakemake.log[0],
)
