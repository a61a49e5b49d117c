"""Snakemake entry point of rule `bench_property_reference`: one property with the reference labeller."""

from nestdb.bench.stage import bench_property_reference
from nestdb.logs import main_guard

main_guard(
    bench_property_reference,
    snakemake.wildcards.kind,
    snakemake.params.spec,
    snakemake.params.bench,
    snakemake.params.element,
    snakemake.output.result,
    snakemake.output.raw,
    log_path=snakemake.log[0],
)
