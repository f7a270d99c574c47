"""The tags a sweep puts on its runs, beyond every run's own (tags.py): one place for the names
that the sweep (altlearn.sweep), its search and compare read back."""

#: the sweep file as written, on the parent run (when it fits a tag): a search's settings stay
#: readable from a store kept without its artifacts (results/, a copied mlflow.db)
SWEEP_TEXT_TAG = "altlearn.sweep_text"
SUPERSEDED_TAG = "altlearn.superseded"  # a trial run that no longer counts (replaced, or left the sweep)
PHASE_TAG = "altlearn.phase"  # a search's trials: search | final
CASE_TAG = "altlearn.case"  # a hash of the case's label: safe inside an MLflow filter string
CASE_LABEL_TAG = "altlearn.case_label"  # the case's label as written
NUMBER_TAG = "altlearn.search_trial"  # a search trial's number within its case, from 0
PRUNED_TAG = "altlearn.pruned_epoch"  # the epoch a pruned trial stopped after
CHOSEN_TAG = "altlearn.chosen_trial"  # a final: the number of the search trial it re-runs
#: a search trial's values (and a final's chosen ones) as JSON: {"optimizer.lr": 0.0012, ...}
PARAMS_TAG = "altlearn.search_params"
#: what the sampler and pruner keep on a trial (Optuna's system attributes), as JSON: a continued
#: search rebuilds its study from the store with them
ATTRS_TAG = "altlearn.search_attrs"
