"""Snakemake entry point of rule `bench_reference`: reference E-V curves and elastic constants."""

from nestdb.bench.stage import bench_reference
from nestdb.logs import main_guard

main_guard(
    bench_reference,
    snakemake.params.spec,
    snakemake.params.bench,
    snakemake.params.element,
    snakemake.output.ev,
    snakemake.output.elastic,
    snakemake.output.raw,
    log_path=snakemake.log[0],
)
