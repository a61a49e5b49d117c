"""Oracle campaigns (issue 16): an independent test set made by the oracle, learning curves,
baseline databases at equal label budget.

* :mod:`nestdb.campaign.testset`: the oracle's NS samples at the campaign's and
  intermediate pressures (other seeds, all temperatures) plus strained
  crystals, labelled by the oracle and classed crystal / liquid / dilute.
* :mod:`nestdb.campaign.learning_curve`: a model's errors on that set by
  phase, pressure and temperature, committee STD against the error, the
  per-cycle table and plot.
* :mod:`nestdb.campaign.baselines`: the hand-built database (strained and
  rattled crystals plus MD snapshots at each pressure).
"""
