"""Snakemake entry point of rule `bench_phase_diagram`: melting line and P-T plot."""

from nestdb.bench.stage import bench_phase_diagram
from nestdb.logs import main_guard

main_guard(
    bench_phase_diagram,
    {float(p): path for p, path in zip(snakemake.params.pressures, snakemake.input.tables, strict=True)},
    int(snakemake.params.n_atoms),
    snakemake.output.melting,
    snakemake.output.plot,
    json_path=snakemake.output.transitions,
    finals={float(p): path for p, path in zip(snakemake.params.pressures, snakemake.input.finals, strict=True)},
    log_path=snakemake.log[0],
)
