"""Snakemake entry point of rule `bench_test_set`: the oracle's independent test set."""

from nestdb.campaign.stage import test_set_stage
from nestdb.logs import main_guard

main_guard(
    test_set_stage,
    snakemake.params.oracle,
    snakemake.params.composition,
    snakemake.params.settings,
    snakemake.params.ns,
    snakemake.output.frames,
    snakemake.output.summary,
    log_path=snakemake.log[0],
)
