"""Snakemake entry point of rule `bench`: one cycle's model against the reference."""

from nestdb.bench.stage import bench_model
from nestdb.logs import main_guard

main_guard(
    bench_model,
    snakemake.params.model_dir,
    snakemake.params.bench,
    snakemake.params.element,
    snakemake.input.reference_ev,
    snakemake.input.reference_elastic,
    snakemake.output.ev,
    snakemake.output.ev_plot,
    snakemake.output.elastic,
    snakemake.output.summary,
    log_path=snakemake.log[0],
)
