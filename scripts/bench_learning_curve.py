"""Snakemake entry point of rule `bench_learning_curve`: every cycle's model on the oracle's test set."""

from nestdb.campaign.stage import learning_curve_stage
from nestdb.logs import main_guard

main_guard(
    learning_curve_stage,
    snakemake.input.test_set,
    "results",
    int(snakemake.params.n_cycles),
    snakemake.params.name,
    snakemake.output.table,
    snakemake.output.json,
    snakemake.output.plot,
    log_path=snakemake.log[0],
)
