"""Snakemake entry point of rule `bench_phase_diagram_analyse`: thermodynamics of one phase-diagram NS run."""
from nestdb.stages import analyse_run, main_guard

main_guard(
    analyse_run,
    snakemake.input.energies,
    snakemake.output.table,
    snakemake.output.temperatures,
    snakemake.output.plot,
    snakemake.params.grid,
    title=snakemake.params.title,
    log_path=snakemake.log[0],
)
