"""Energy models chosen by config, and the registry idea they share with the labellers.

:mod:`~nestdb.models.registry` (a kind name -> factory registry and the
:class:`~nestdb.models.registry.Spec` shape), :mod:`~nestdb.models.calculators`
(``make_calculator``: Lennard-Jones, EAM, EMT and the fitted committees),
:mod:`~nestdb.models.committee` (the committee-calculator base class),
:mod:`~nestdb.models.ace_committee` (the linear-ACE committee) and
:mod:`~nestdb.models.pacemaker_committee` (a committee of pacemaker fits).
"""
