"""Unit conversions used across nestdb (ASE units: eV, Angstrom, amu)."""

from ase import units

#: 1 GPa in eV/Angstrom^3 (6.2415e-3), the unit of ``ns_P`` in NS outputs.
GPA = units.GPa

#: Boltzmann constant in eV/K, the value pymatnest and ns_analyse use.
KB_EV_PER_K = 8.6173324e-5


def gpa_to_ev_per_a3(pressure_gpa: float) -> float:
    """Convert a pressure from GPa to eV/Angstrom^3."""
    return float(pressure_gpa) * GPA


def ev_per_a3_to_gpa(pressure: float) -> float:
    """Convert a pressure from eV/Angstrom^3 to GPa."""
    return float(pressure) / GPA
