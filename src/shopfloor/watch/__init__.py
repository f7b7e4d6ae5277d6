"""Drift and data-quality watch: a model's reference profile, the tests that compare new data with it, and the
bounded rolling profile that the stream keeps per live model.

- `profile.py`: the reference profile written into every model folder at training time (no raw rows);
- `distances.py`: PSI, Wasserstein, chi-squared, Jensen-Shannon and an MMD permutation test for embeddings;
- `quality.py`: out of the training range, new categories, stuck and missing sensors;
- `performance.py`: the accuracy and F1 a calibrated yes/no classifier expects on new rows, without labels (CBPE);
- `compare.py`: one verdict per input (ok / watch / drift) from the tests and the findings;
- `rolling.py`: the last readings of each input in fixed-size rings, compared as `compare` does;
- `line.py`, `service.py`: the stream worker's and the REST service's watch of live models: verdicts stored, an
  alert when an input drifts; `signals.py`: a diagnose model's windows on the line, in its profile's terms;
- `report.py`: the drift page.
"""
