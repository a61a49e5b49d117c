"""Snakemake entry point of rules `fit_pacemaker_prepare` and `fit_pacemaker`."""

from pathlib import Path

from nestdb.fit.stage import fit_pacemaker_collect, fit_pacemaker_prepare
from nestdb.logs import main_guard

if snakemake.rule == "fit_pacemaker_prepare":
    main_guard(
        fit_pacemaker_prepare,
        list(snakemake.input.training),
        snakemake.params.settings,
        str(Path(snakemake.output.split).parent),
        e0_paths=list(snakemake.input.e0),
        log_path=snakemake.log[0],
    )
else:
    main_guard(
        fit_pacemaker_collect,
        list(snakemake.input.training),
        snakemake.params.settings,
        str(Path(snakemake.output.metrics).parent),
        e0_paths=list(snakemake.input.e0),
        log_path=snakemake.log[0],
    )
