"""Snakemake entry point of rule `explore`: a random-crystal or MD pool at one pressure."""

from pathlib import Path

from nestdb.explore.stage import explore_pool
from nestdb.logs import main_guard

model = getattr(snakemake.input, "model", None)
main_guard(
    explore_pool,
    snakemake.params.block,
    snakemake.params.explore,
    float(snakemake.wildcards.pressure),
    int(snakemake.wildcards.cycle),
    snakemake.output.pool,
    snakemake.output.summary,
    model_dir=str(Path(model).parent) if model else None,
    log_path=snakemake.log[0],
)
