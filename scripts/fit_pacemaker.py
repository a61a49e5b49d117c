"""Snakemake entry point of rules `fit_pacemaker_prepare` and `fit_pacemaker`."""
from pathlib import Path

from nestdb.stages import fit_cycle, main_guard

if snakemake.rule == "fit_pacemaker_prepare":
    main_guard(fit_cycle, list(snakemake.input.training), snakemake.params.settings,
               str(Path(snakemake.output.split).parent), step="pacemaker_prepare", e0_paths=list(snakemake.input.e0),
               log_path=snakemake.log[0])
else:
    main_guard(fit_cycle, list(snakemake.input.training), snakemake.params.settings,
               str(Path(snakemake.output.metrics).parent), step="pacemaker_collect", e0_paths=list(snakemake.input.e0),
               log_path=snakemake.log[0])
