"""Snakemake entry point of rule `bench_property`: one property of a cycle's model against the reference."""

from nestdb.bench.stage import bench_property_model
from nestdb.logs import main_guard

main_guard(
    bench_property_model,
    snakemake.wildcards.kind,
    snakemake.params.model_dir,
    snakemake.params.bench,
    snakemake.params.element,
    snakemake.input.reference,
    snakemake.output.result,
    snakemake.output.table,
    snakemake.output.plot,
    title=snakemake.params.title,
    log_path=snakemake.log[0],
)
