"""Permutation importance of a trained model: it ranks features in the drift report by how
much the model relies on them (a drifted feature the model ignores matters less)."""

from __future__ import annotations

from typing import Any

import pandas as pd
from threadpoolctl import threadpool_limits

from mlops_assets.core.contract import Contract
from mlops_assets.core.train import feature_matrix


def permutation_importance_auc(pipeline: Any, train: pd.DataFrame, contract: Contract, seed: int,
                               sample: int = 5000) -> dict[str, float]:
    """Mean drop in ROC AUC when each feature is shuffled, on a seeded sample of the training
    rows; {} when the sample holds one label class. Single-threaded: the numbers (and so
    model.json's bytes) must not depend on the machine's core count."""
    # deferred: sklearn.inspection is heavy and only the train stage needs it
    from sklearn.inspection import permutation_importance

    rows = train.sample(n=min(sample, len(train)), random_state=seed).sort_index()
    y = rows[contract.label_column].to_numpy()
    if len(set(y.tolist())) < 2:
        return {}
    with threadpool_limits(1):
        imp = permutation_importance(pipeline, feature_matrix(rows, contract), y,
                                     scoring="roc_auc", n_repeats=3, random_state=seed, n_jobs=1)
    return {name: round(float(v), 6) for name, v in zip(contract.feature_names,
                                                        imp.importances_mean, strict=True)}
