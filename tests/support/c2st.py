#!/usr/bin/python3
"""C2ST exactly as sbibm computes it (see ../shared/sbibm/README.md).

usage: c2st.py REFERENCE.csv SAMPLES.csv   (CSV, header row optional; the same number of columns)
prints the mean 5-fold accuracy of an MLP classifier; 0.5 = indistinguishable, 1.0 = separable.
"""
import sys

import numpy as np
from sklearn.model_selection import KFold, cross_val_score
from sklearn.neural_network import MLPClassifier


def load(path):
    with open(path) as f:
        first = f.readline()
    try:
        [float(v) for v in first.split(",")]
        skip = 0
    except ValueError:
        skip = 1
    return np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2).astype(np.float32)


def c2st(x, y, seed=1, n_folds=5):
    mean, std = x.mean(axis=0), x.std(axis=0, ddof=1)
    x, y = (x - mean) / std, (y - mean) / std
    d = x.shape[1]
    clf = MLPClassifier(activation="relu", hidden_layer_sizes=(10 * d, 10 * d), max_iter=10000,
                        solver="adam", random_state=seed)
    data = np.concatenate([x, y])
    target = np.concatenate([np.zeros(len(x)), np.ones(len(y))])
    folds = KFold(n_splits=n_folds, shuffle=True, random_state=seed)
    # The folds are independent fits: running them in parallel changes nothing but the wall time.
    return float(np.mean(cross_val_score(clf, data, target, cv=folds, scoring="accuracy", n_jobs=-1)))


if __name__ == "__main__":
    print(f"{c2st(load(sys.argv[1]), load(sys.argv[2])):.4f}")
