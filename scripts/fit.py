"""Snakemake entry point of rule `fit`: the cycle's linear-ACE committee."""
from pathlib import Path

from nestdb.stages import fit_cycle, main_guard

settings = dict(snakemake.params.settings, n_jobs=snakemake.threads)
if hasattr(snakemake.input, "hyperopt"):  # fit.hyperopt.enabled: the study's chosen settings
    from nestdb.fit.hyperopt import apply_hyperopt_result

    settings = apply_hyperopt_result(settings, snakemake.input.hyperopt)
main_guard(
    fit_cycle,
    list(snakemake.input.training),
    settings,
    str(Path(snakemake.output.committee).parent),
    e0_paths=list(snakemake.input.e0),
    log_path=snakemake.log[0],
)
