"""Snakemake entry point of rule `label_isolated_atom`: E0 of one element."""

from nestdb.label.stage import isolated_atom_energy
from nestdb.logs import main_guard

main_guard(
    isolated_atom_energy,
    snakemake.wildcards.element,
    snakemake.params.spec,
    snakemake.output.energy,
    snakemake.output.raw,
    box=snakemake.params.box,
    policy=snakemake.params.policy,
    log_path=snakemake.log[0],
)
