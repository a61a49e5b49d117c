"""Snakemake entry point of rule `ns`: one nested-sampling run."""
from pathlib import Path

from nestdb.stages import explore, main_guard

model = getattr(snakemake.input, "model", None)
main_guard(
    explore,
    snakemake.params.block,
    float(snakemake.wildcards.pressure),
    int(snakemake.wildcards.cycle),
    snakemake.params.prefix,
    model_dir=str(Path(model).parent) if model else None,
    progress_path=snakemake.log[0],
    log_path=snakemake.log[0],
)
