# nestdb: nested sampling -> selection -> DFT labels -> ACE committee -> benchmarks,
# unrolled over the configured cycles (cycle n samples with cycle n-1's model).
from pathlib import Path

from snakemake.utils import min_version, validate

from nestdb.config import SCHEMA, use_default_config

min_version("9.0")

# The campaign is exactly the --configfile file(s): no `configfile:` directive,
# which Snakemake would deep-merge them onto (the default's keys leaking into
# another material's campaign). Without --configfile the embedded default
# config/config.yaml beside this Snakefile is read, --config KEY=VALUE on top.
use_default_config(config, workflow.config_settings.configfiles, Path(workflow.basedir) / "config" / "config.yaml")


report: "workflow/report/workflow.rst"


# Types and defaults from the package's schema (one table), then the cross-key
# checks (common.smk: nestdb.config.check_config), all before any job.
validate(config, str(SCHEMA))


include: "workflow/rules/common.smk"


wildcard_constraints:
    cycle=r"\d+",
    # "" (one composition per cycle) or "<tag>/" (several: results/ns/cycle0/Cu3Au1/P0GPa/)
    comp=r"([A-Z][A-Za-z0-9]*/)?",
    pressure=r"\d+(\.\d+)?",
    config_id=r"[A-Za-z0-9_\-]+",


include: "workflow/rules/ns.smk"
include: "workflow/rules/select.smk"
include: "workflow/rules/label.smk"
include: "workflow/rules/fit.smk"
include: "workflow/rules/bench.smk"


rule all:
    input:
        all_targets(),
    default_target: True
