"""Snakemake entry point of rule `bench_mixing`: mixing enthalpy of the NS runs of all compositions at one pressure."""

from nestdb.bench.stage import bench_mixing
from nestdb.logs import main_guard

main_guard(
    bench_mixing,
    list(snakemake.input.tables),
    list(snakemake.params.tags),
    [dict(c) for c in snakemake.params.compositions],
    list(snakemake.params.elements),
    snakemake.output.table,
    snakemake.output.plot,
    title=snakemake.params.title,
    log_path=snakemake.log[0],
)
