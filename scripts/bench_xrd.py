"""Snakemake entry point of rule `bench_xrd`: XRD patterns of one NS run by temperature."""

from nestdb.bench.stage import bench_xrd
from nestdb.logs import main_guard

main_guard(
    bench_xrd,
    snakemake.input.traj,
    snakemake.input.temperatures,
    snakemake.params.xrd,
    snakemake.output.table,
    snakemake.output.plot,
    title=snakemake.params.title,
    element=snakemake.params.element,
    log_path=snakemake.log[0],
)
