"""Snakemake entry point of rule `bench_sro`: Warren-Cowley order of one NS run's samples against temperature."""

from nestdb.bench.stage import bench_sro
from nestdb.logs import main_guard

main_guard(
    bench_sro,
    snakemake.input.traj,
    snakemake.input.energies,
    list(snakemake.params.elements),
    dict(snakemake.params.grid),
    snakemake.output.table,
    snakemake.output.plot,
    title=snakemake.params.title,
    log_path=snakemake.log[0],
)
