#!/usr/bin/python3
"""sir's exact posterior, to judge fsbi's against.

sbibm ships no reference posterior for sir (../shared/sbibm/TASKS.md), but its likelihood is
tractable: the counts are independent binomials, x_j ~ Binomial(1000, I(t_j)/N), around the
deterministic SIR trajectory. This script solves the ODE (scipy's DOP853, rtol 1e-11, tighter
than the plugin's 1e-8) and computes the exact posterior of sbibm's observation K on a grid in
(log β, log γ) — a coarse 60² grid over the prior's bulk, then 90² over ×/÷ 1.4 around its
maximum. It prints the posterior's mean and sd, where sbibm's true parameters lie in it and, with
``--posterior``, the mean and sd of an fsbi posterior and how many exact-posterior sd its mean is
off. (The learned score itself is checked against the plugin's exact likelihood score by
``build/bench/score_error``.)

    /usr/bin/python3 bench/sir_exact.py --observation 2 --posterior RUN.h5

Two processes; about a minute per observation on the 2-core VM.
"""
import argparse
import csv
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from scipy.integrate import solve_ivp
from scipy.stats import binom

POP = 1e6
TOTAL = 1000
TIMES = np.arange(0, 161, 17)  # t = 0, 17, ..., 153 (sbibm's us[:, 1, ::17])
ROOT = Path(__file__).resolve().parents[1]

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("--observation", type=int, required=True, help="sbibm observation number (1-10)")
p.add_argument("--posterior", help="fsbi posterior to compare with the exact posterior: RUN.h5, or a CSV of "
                                    "samples (one row per sample, as bench/quality/run.py keeps them)")
p.add_argument("--sbibm", default=str(ROOT.parent / "shared" / "sbibm"),
               help="sbibm data directory (default: ../shared/sbibm beside the project)")
args = p.parse_args()


def infected(theta):
    """I(t_j) for t_j in TIMES."""
    b, g = float(theta[0]), float(theta[1])

    def rhs(_, u):
        new = b * u[0] * u[1] / POP
        return [-new, new - g * u[1], g * u[1]]

    sol = solve_ivp(rhs, [0, 160], [POP - 1, 1, 0], method="DOP853", rtol=1e-11, atol=1e-9, t_eval=TIMES)
    if not sol.success:
        raise RuntimeError(f"ODE solve failed at theta = {theta}: {sol.message}")
    return sol.y[1]


def log_likelihood(job):
    theta, x = job
    prob = np.clip(infected(theta) / POP, 0.0, 1.0)
    return float(binom.logpmf(x, TOTAL, prob).sum())


def log_prior(beta, gamma):
    """Density of the LogNormal priors in θ (up to a constant)."""
    return (-np.log(beta) - 0.5 * ((np.log(beta) - np.log(0.4)) / 0.5) ** 2
            - np.log(gamma) - 0.5 * ((np.log(gamma) - np.log(0.125)) / 0.2) ** 2)


def exact_posterior(pool, k):
    folder = Path(args.sbibm) / "sir" / f"obs_{k}"
    x = read_table(folder / "observation.csv")[0]
    true = read_table(folder / "true_parameters.csv")[0]

    def grid(b_lo, b_hi, g_lo, g_hi, n):
        B = np.exp(np.linspace(np.log(b_lo), np.log(b_hi), n))
        G = np.exp(np.linspace(np.log(g_lo), np.log(g_hi), n))
        ll = pool.map(log_likelihood, [((b, g), x) for b in B for g in G])
        L = np.array(ll).reshape(n, n) + log_prior(B[:, None], G[None, :])
        return B, G, L

    B, G, L = grid(0.05, 3.0, 0.03, 0.5, 60)
    i, j = np.unravel_index(np.argmax(L), L.shape)
    B, G, L = grid(B[i] / 1.4, B[i] * 1.4, G[j] / 1.4, G[j] * 1.4, 90)
    # Log-spaced cells: a cell's θ-volume is proportional to β γ.
    W = np.exp(L - L.max()) * B[:, None] * G[None, :]
    W /= W.sum()
    edge = W[0].sum() + W[-1].sum() + W[:, 0].sum() + W[:, -1].sum()
    mean = np.array([(W.sum(1) * B).sum(), (W.sum(0) * G).sum()])
    sd = np.sqrt([(W.sum(1) * (B - mean[0]) ** 2).sum(), (W.sum(0) * (G - mean[1]) ** 2).sum()])
    print(f"sir observation {k}: x_o = {x.astype(int).tolist()}")
    print(f"  exact posterior  beta {mean[0]:.4f} ± {sd[0]:.4f}   gamma {mean[1]:.4f} ± {sd[1]:.4f}"
          f"   (grid mass on its edge {edge:.1e})")
    z = (true - mean) / sd
    print(f"  true parameters  beta {true[0]:.4f} (z {z[0]:+.2f})   gamma {true[1]:.4f} (z {z[1]:+.2f})")
    if args.posterior:
        if args.posterior.endswith(".csv"):
            theta = read_table(args.posterior)
        else:
            import h5py
            with h5py.File(args.posterior, "r") as f:
                theta = f["posterior/theta"][()].reshape(-1, 2)
        m, s = theta.mean(0), theta.std(0)
        off = (m - mean) / sd
        print(f"  fsbi posterior   beta {m[0]:.4f} ± {s[0]:.4f}   gamma {m[1]:.4f} ± {s[1]:.4f}"
              f"   mean off by {off[0]:+.1f} and {off[1]:+.1f} exact sd; sd ratio {s[0] / sd[0]:.2f}, {s[1] / sd[1]:.2f}")


def read_table(path):
    with open(path) as f:
        rows = [r for r in csv.reader(f) if r]
    if rows and not all(_is_number(v) for v in rows[0]):
        rows = rows[1:]
    return np.array(rows, dtype=float)


def _is_number(v):
    try:
        float(v)
        return True
    except ValueError:
        return False


with Pool(2) as pool:
    exact_posterior(pool, args.observation)
