"""Snakemake entry point of rules `fit_hyperopt_rows`, `fit_hyperopt_worker` and `fit_hyperopt`."""
from pathlib import Path

from nestdb.fit.hyperopt import hyperopt_step
from nestdb.stages import main_guard

main_guard(
    hyperopt_step,
    snakemake.params.step,
    list(snakemake.input.training),
    dict(snakemake.params.settings),
    str(Path(snakemake.output[0]).parent),
    index=int(snakemake.wildcards.get("index", 0)),
    n_jobs=snakemake.threads,
    output=snakemake.output[0],
    e0_paths=list(snakemake.input.e0),
    log_path=snakemake.log[0],
)
