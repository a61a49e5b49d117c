"""Snakemake entry point of rule `gather_labels`: one cycle's labelled database."""
from nestdb.stages import gather_labels, main_guard

main_guard(
    gather_labels,
    list(snakemake.input.labelled),
    snakemake.output.database,
    snakemake.output.table,
    snakemake.params.max_failed_fraction,
    log_path=snakemake.log[0],
)
