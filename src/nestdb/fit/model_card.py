"""The model card of a fitted model folder: what the model is, what it was fitted to, how good it is.

:func:`model_card` renders ``model.json``'s content (settings, data and
metrics of :func:`nestdb.fit.files.write_model_outputs`) as Markdown
(``model_card.md``).
"""

from __future__ import annotations

from typing import Any


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def model_card(info: dict) -> str:
    """Markdown model card: what the model is, what it was fitted to, how good it is."""
    settings = info["settings"]
    metrics = info["metrics"]
    data = info["training_set"]
    lines = [
        f"# Model card: {info['model']}",
        "",
        "## Model",
        f"- elements {info['elements']}, cutoff {settings['cutoff']} Å, body order {info['body_order']}, "
        f"{info['n_functions']} basis functions (nradmax_by_orders {settings['nradmax_by_orders']}, "
        f"lmax_by_orders {settings['lmax_by_orders']})",
        f"- reference energies E0 (eV): {info['reference_energies']}"
        + (f" (fitted; given {info['reference_energies_given']})" if settings["fit_reference_energies"] else "")
        + " — added back by the committee calculator; `potential.yaml`/`.yace` give E − ΣE0",
        f"- weights energy : force : virial = {settings['energy_weight']:g} : {settings['force_weight']:g} : "
        f"{settings['virial_weight']:g}; sample weights {'used' if settings['use_sample_weights'] else 'not used'}",
        f"- committee: {info['committee_size']} members ({info['committee_method']}), calibration factor "
        f"{info['calibration']['factor']:.2f} from {info['calibration']['n_configs']} held-out configurations",
        "",
        "## Data",
        f"- {data['n_configs']} configurations, {data['n_atoms_total']} atoms "
        f"({len(info['train_indices'])} train / {len(info['test_indices'])} test, stratified by cycle and pressure)",
    ]
    if "refit_on_all_data" in info:
        lines.append(
            f"- refitted on all configurations; the test errors below are those of the fit without the "
            f"{len(info['refit_on_all_data']['test_indices_of_split'])} test configurations "
            f"(`{info['refit_on_all_data']['split_model']}/`)"
        )
    if "volume_per_atom_min" in data:
        lines.append(f"- volume {data['volume_per_atom_min']:.1f}–{data['volume_per_atom_max']:.1f} Å³/atom")
    lines += [
        "",
        "## Errors",
        "",
        "| set | E RMSE (meV/atom) | F RMSE (meV/Å) | virial RMSE (meV/atom) | n |",
        "|---|---|---|---|---|",
    ]
    for name in ("train", "test"):
        if name in metrics:
            m = metrics[name]
            lines.append(
                f"| {name} | {_fmt(m['energy_rmse_mev_per_atom'])} | {_fmt(m['force_rmse_mev_per_a'], 1)} "
                f"| {_fmt(m.get('virial_rmse_mev_per_atom'), 1)} | {m['n_configs']} |"
            )
    for kind in ("cycle", "pressure"):
        groups = metrics.get("groups", {}).get("test") or metrics.get("groups", {}).get("train", {})
        if groups.get(kind):
            lines += [
                "",
                f"Per {kind} ({'test' if 'test' in metrics else 'train'}):",
                "",
                f"| {kind} | E RMSE | F RMSE | n |",
                "|---|---|---|---|",
            ]
            for label, m in groups[kind].items():
                lines.append(
                    f"| {label} | {_fmt(m['energy_rmse_mev_per_atom'])} | "
                    f"{_fmt(m['force_rmse_mev_per_a'], 1)} | {m['n_configs']} |"
                )
    calibration = metrics.get("calibration", {})
    if "test_calibrated" in calibration:
        raw, cal = calibration["test_raw"], calibration["test_calibrated"]
        lines += [
            "",
            "## Committee uncertainty (test set)",
            "",
            "| | STD RMS (meV/atom) | error RMS | within 1 STD | within 2 STD | Spearman |",
            "|---|---|---|---|---|---|",
            f"| raw | {_fmt(raw['std_rms'], 3)} | {_fmt(raw['error_rms'])} | {_fmt(raw['fraction_within_1std'])} "
            f"| {_fmt(raw['fraction_within_2std'])} | {_fmt(raw['spearman'])} |",
            f"| calibrated | {_fmt(cal['std_rms'], 3)} | {_fmt(cal['error_rms'])} | "
            f"{_fmt(cal['fraction_within_1std'])} | {_fmt(cal['fraction_within_2std'])} | {_fmt(cal['spearman'])} |",
            "",
            "The calibrated STD is the per-configuration error scale (errors / STD have unit RMS on held-out "
            "data); the NS committee limit "
            "(`ns.committee_std_max`) compares against it.",
        ]
    lines += ["", f"Fit wall time {metrics['fit_wall_time_s']:.1f} s.", ""]
    return "\n".join(lines)
