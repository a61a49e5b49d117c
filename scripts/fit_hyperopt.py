"""Snakemake entry point of rules `fit_hyperopt_rows`, `fit_hyperopt_worker` and `fit_hyperopt`."""

from pathlib import Path

from nestdb.fit.stage import fit_hyperopt_rows, fit_hyperopt_summary, fit_hyperopt_worker
from nestdb.logs import main_guard

study_dir = str(Path(snakemake.output[0]).parent)
arguments = (list(snakemake.input.training), dict(snakemake.params.settings), study_dir)
if snakemake.rule == "fit_hyperopt":
    main_guard(fit_hyperopt_summary, *arguments, e0_paths=list(snakemake.input.e0), log_path=snakemake.log[0])
else:
    step = fit_hyperopt_rows if snakemake.rule == "fit_hyperopt_rows" else fit_hyperopt_worker
    main_guard(
        step,
        *arguments,
        int(snakemake.wildcards.index),
        n_jobs=snakemake.threads,
        output=snakemake.output[0],
        e0_paths=list(snakemake.input.e0),
        log_path=snakemake.log[0],
    )
