"""Snakemake entry point of rule `bench_phase_diagram_ns`: NS with the final model at one pressure."""

from pathlib import Path

from nestdb.logs import main_guard
from nestdb.ns.stage import ns_run_stage

main_guard(
    ns_run_stage,
    snakemake.params.block,
    float(snakemake.wildcards.pressure),
    int(snakemake.params.cycle),
    snakemake.params.prefix,
    model_dir=str(Path(snakemake.input.model).parent),
    progress_path=snakemake.log[0],
    log_path=snakemake.log[0],
)
