"""Snakemake entry point of checkpoint `select`: the cycle's selection rule on one run or exploration pool."""

from pathlib import Path

from nestdb.logs import main_guard
from nestdb.select.stage import select_pool_run, select_run

if hasattr(snakemake.input, "pool"):  # cycles exploring with random_crystals or md (nestdb.explore)
    main_guard(
        select_pool_run,
        snakemake.input.pool,
        snakemake.params.rule,
        int(snakemake.wildcards.cycle),
        float(snakemake.wildcards.pressure),
        snakemake.output.candidates,
        snakemake.output.configs,
        snakemake.output.plot,
        order_plot_path=snakemake.output.order_plot,
        log_path=snakemake.log[0],
    )
else:
    model = getattr(snakemake.input, "model", None)
    main_guard(
        select_run,
        snakemake.input.traj,
        snakemake.input.summary,
        snakemake.input.temperatures,
        snakemake.params.rule,
        int(snakemake.wildcards.cycle),
        float(snakemake.wildcards.pressure),
        snakemake.params.weight_alpha,
        snakemake.output.candidates,
        snakemake.output.configs,
        snakemake.output.plot,
        final_path=snakemake.input.final,
        weight_rescale=snakemake.params.weight_rescale,
        order_plot_path=snakemake.output.order_plot,
        model_dir=str(Path(model).parent) if model else None,
        id_tag=getattr(snakemake.wildcards, "comp", ""),  # several compositions per pressure: unique ids
        log_path=snakemake.log[0],
    )
