"""Snakemake entry point of rule `fit_pacemaker_member`: one pacemaker committee member.

pacemaker, its optional low-kappa refit and pace_activeset run as argv lists
(`shlex.split` of fit.pacemaker.command / activeset_command), never through a
shell: nestdb.fit.pacemaker_member. The rule runs in pacemaker's environment
(envs/pacemaker.yaml), which does not install nestdb; that module needs only
the standard library and nestdb.errors, so it is then loaded from this
repository's source tree.
"""

import importlib.util
import sys
from pathlib import Path

try:
    from nestdb.errors import NestdbError
    from nestdb.fit.pacemaker_member import run_member_steps
except ImportError:  # pacemaker's environment: no nestdb (and no nestdb.fit dependencies)
    source = Path(snakemake.scriptdir).resolve().parent / "src"
    sys.path.append(str(source))
    from nestdb.errors import NestdbError

    spec = importlib.util.spec_from_file_location(
        "nestdb_pacemaker_member", source / "nestdb" / "fit" / "pacemaker_member.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    run_member_steps = module.run_member_steps

try:
    run_member_steps(
        Path(snakemake.input[0]).parent, snakemake.params.command, snakemake.params.activeset, log_path=snakemake.log[0]
    )
except NestdbError as error:
    with open(snakemake.log[0], "a") as log:
        log.write(f"error: {error}\n")
    sys.exit(f"fit_pacemaker_member: {error}")
