# nestdb: nested sampling -> selection -> DFT labels -> ACE committee -> benchmarks,
# unrolled over the configured cycles (cycle n samples with cycle n-1's model).
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


validate(config, "workflow/schemas/config.schema.yaml")


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
