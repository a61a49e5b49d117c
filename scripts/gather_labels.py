"""Snakemake entry point of rule `gather_labels`: one cycle's labelled database, failures and cost."""

from nestdb.label.stage import gather_labels
from nestdb.logs import main_guard

main_guard(
    gather_labels,
    list(snakemake.input.labelled),
    snakemake.output.database,
    snakemake.output.table,
    snakemake.params.max_failed_fraction,
    failures_path=snakemake.output.failures,
    cost_path=snakemake.output.cost,
    log_path=snakemake.log[0],
)
