"""Labelling policy around :func:`label_configuration`: cache, retries with safer settings, limits.

One call labels one configuration the way the workflow's ``label`` job does:

1. look it up in the cache (structure + settings hash): a hit costs nothing;
2. otherwise calculate; on a failure other than a cost-guard rejection, retry
   with each entry of ``retry`` (settings overrides, e.g. a smaller mixing
   amplitude, wider smearing, more SCF cycles) in its own raw sub-folder
   ``retry<k>``;
3. store a success in the cache under the *requested* settings hash, so a
   rerun, a later cycle or another run finds it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ase import Atoms

from nestdb.errors import ConfigError
from nestdb.label.cache import LabelCache
from nestdb.label.core import DEFAULT_LIMITS, Labeller, label_configuration
from nestdb.label.labellers import make_labeller


@dataclass
class LabelPolicy:
    """How one configuration is labelled beyond the code's settings (``label`` config keys).

    Attributes
    ----------
    cache_dir
        Label cache folder (``label.cache_dir``); None disables the cache.
    timeout_s
        Wall-time limit per calculation in seconds (``label.timeout_s``); None: none.
    retry
        Settings overrides of the active code tried in order after a failure
        (``label.retry.<code>``).
    limits
        Sanity limits (``label.limits``), see :data:`nestdb.label.core.DEFAULT_LIMITS`.
    """

    cache_dir: str | None = None
    timeout_s: float | None = None
    retry: list[dict[str, Any]] = field(default_factory=list)
    limits: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_config(cls, label: dict[str, Any]) -> LabelPolicy:
        """Policy of a ``label`` config section (schema-validated, defaults filled).

        Raises
        ------
        ConfigError
            Malformed ``retry`` (or an override that is not a setting of the
            code), or unknown ``limits`` keys.
        """
        code = label.get("code")
        retry = (label.get("retry") or {}).get(code) or []
        if not isinstance(retry, list) or not all(isinstance(entry, dict) for entry in retry):
            raise ConfigError(
                f"label.retry.{code}: expected a list of settings overrides, e.g. "
                f"[{{smearing_width: 0.3, max_scf_cycles: 300}}]; got {retry!r}"
            )
        if retry:
            # Fail at configuration time, not in the first failed job: every override must be a setting.
            base = make_labeller({"code": code, code: label.get(code) or {}})
            for overrides in retry:
                base.with_overrides(overrides)
        limits = dict(label.get("limits") or {})
        unknown = set(limits) - set(DEFAULT_LIMITS)
        if unknown:
            raise ConfigError(f"label.limits: unknown key(s) {sorted(unknown)}; allowed: {sorted(DEFAULT_LIMITS)}")
        return cls(cache_dir=label.get("cache_dir"), timeout_s=label.get("timeout_s"), retry=retry, limits=limits)

    def to_json(self) -> str:
        """JSON for the ``--policy`` option of ``python -m nestdb.cli label``."""
        return json.dumps(self.__dict__, sort_keys=True)


def _settings_json(labeller: Labeller) -> str:
    return json.dumps(labeller.settings, sort_keys=True, separators=(",", ":"), default=str)


def label_with_policy(
    atoms: Atoms, labeller: Labeller, workdir: str | Path, policy: LabelPolicy, store: bool = True
) -> Atoms:
    """Label one configuration: cache lookup, calculation, retries, cache store.

    Cost: zero calculations on a cache hit, else 1 + (failed attempts) up to
    ``1 + len(policy.retry)``.

    Parameters
    ----------
    atoms
        Configuration (info keys are kept).
    labeller
        From :func:`nestdb.label.make_labeller`.
    workdir
        Raw output folder of the first attempt; retry ``k`` uses ``workdir/retry<k>``.
    policy
        See :class:`LabelPolicy`.
    store
        Write a success to the cache, best effort (a failed write is a
        warning). False on MPI ranks other than 0 (every rank reads the cache,
        so all agree on whether to calculate), and for callers that write
        their own output first and then call :meth:`LabelCache.store`.

    Returns
    -------
    ase.Atoms
        The record of :func:`label_configuration` plus ``label_requested_hash``
        (hash of the configured settings; ``label_settings_hash`` is that of the
        settings actually used), ``label_settings`` (those settings as JSON),
        ``label_attempts``, ``label_cached`` (True: taken from the cache, no
        cost this run) and ``label_cpu_s`` summed over attempts.

    Raises
    ------
    ConfigError
        A retry override is not a setting of the code.
    """
    workdir = Path(workdir)
    attempts = [labeller] + [labeller.with_overrides(overrides) for overrides in policy.retry]
    requested = labeller.settings_hash
    cache = LabelCache(policy.cache_dir) if policy.cache_dir else None
    if cache is not None:
        hit = cache.get(atoms, requested)
        if hit is not None:
            hit.info["label_cached"] = True
            return hit
    total_cpu = total_wall = 0.0
    for number, current in enumerate(attempts):
        directory = workdir if number == 0 else workdir / f"retry{number}"
        record = label_configuration(atoms, current, directory, timeout_s=policy.timeout_s, limits=policy.limits)
        total_cpu += record.info["label_cpu_s"]
        total_wall += record.info["label_wall_s"]
        if record.info["label_status"] == "ok" or record.info.get("label_failure_kind") == "rejected":
            break
    record.info.update(
        {
            "label_requested_hash": requested,
            "label_settings": _settings_json(current),
            "label_attempts": number + 1,
            "label_cached": False,
            "label_cpu_s": round(total_cpu, 3),
            "label_wall_s": round(total_wall, 3),
        }
    )
    if cache is not None and store:
        cache.store(record)  # best effort: the caller writes the record it gets back
    return record
