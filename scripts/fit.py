"""Snakemake entry point of rule `fit`: the cycle's linear-ACE committee."""

from pathlib import Path

from nestdb.fit.stage import fit_cycle
from nestdb.logs import main_guard

main_guard(
    fit_cycle,
    list(snakemake.input.training),
    dict(snakemake.params.settings, n_jobs=snakemake.threads),
    str(Path(snakemake.output.committee).parent),
    e0_paths=list(snakemake.input.e0),
    # fit.hyperopt.enabled: the study's chosen settings
    hyperopt_result=snakemake.input.get("hyperopt"),
    log_path=snakemake.log[0],
)
