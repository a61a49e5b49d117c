"""Snakemake entry point of rule `fit`: the cycle's linear-ACE committee."""
from pathlib import Path

from nestdb.stages import fit_cycle, main_guard

main_guard(
    fit_cycle,
    list(snakemake.input),
    dict(snakemake.params.settings, n_jobs=snakemake.threads),
    str(Path(snakemake.output.committee).parent),
    log_path=snakemake.log[0],
)
