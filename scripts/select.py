"""Snakemake entry point of checkpoint `select`: the cycle's selection rule on one run."""
from nestdb.stages import main_guard, select_run

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
    log_path=snakemake.log[0],
)
