"""Snakemake entry point of rules `analyse` and `bench_phase_diagram_analyse`: thermodynamics of one NS run."""

from nestdb.logs import main_guard
from nestdb.thermo.stage import analyse_run

main_guard(
    analyse_run,
    snakemake.input.energies,
    snakemake.output.table,
    snakemake.output.temperatures,
    snakemake.output.plot,
    snakemake.params.grid,
    title=snakemake.params.title,
    transitions_path=snakemake.output.transitions,
    log_path=snakemake.log[0],
)
