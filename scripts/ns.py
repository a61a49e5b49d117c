"""Snakemake entry point of rule `ns`: one nested-sampling run."""

from pathlib import Path

from nestdb.logs import main_guard
from nestdb.ns.stage import ns_run_stage

model = getattr(snakemake.input, "model", None)
block = dict(snakemake.params.block)
# Snakemake may grant fewer threads than asked (--cores); the samples do not depend on n_procs
block["n_procs"] = max(1, min(int(block.get("n_procs", 1)), snakemake.threads))
main_guard(
    ns_run_stage,
    block,
    float(snakemake.wildcards.pressure),
    int(snakemake.wildcards.cycle),
    snakemake.params.prefix,
    model_dir=str(Path(model).parent) if model else None,
    progress_path=snakemake.log[0],
    # a rerun of a killed job resumes from the snapshot in this undeclared folder
    resume=True,
    work_dir=str(Path(snakemake.params.prefix).parent / "restart"),
    log_path=snakemake.log[0],
)
