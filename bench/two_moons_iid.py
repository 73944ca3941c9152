#!/usr/bin/python3
"""two_moons with several i.i.d. observations: the exact posterior, to judge fsbi's composed one.

two_moons' likelihood is tractable (../shared/sbibm/TASKS.md): x = p + (0.25 − |θ₀+θ₁|/√2,
(θ₁−θ₀)/√2) with p = r(cos a, sin a), r ~ N(0.1, 0.01²), a ~ U(−π/2, π/2), so
p(x|θ) = N(|p|; 0.1, 0.01²) / (π |p|) where p₀ > 0, else 0. This script draws N observations at
given true parameters (numpy, --seed), writes them as an fsbi observation file, computes the
exact posterior π(θ) Πᵢ p(xᵢ|θ) on a grid (2001² over the prior box, then 801² over the box that
holds its mass), and with ``--posterior`` compares fsbi run files with it: C2ST (as sbibm
computes it, tests/support/c2st.py) against 10 000 exact draws, the share in the mode with
θ₀ + θ₁ > 0, and each mode's mean against the exact one in exact posterior sd.

    /usr/bin/python3 bench/two_moons_iid.py --num-observations 5 --write obs.csv
    fsbi run -s two_moons --observation obs.csv -n 10000 --seed 1 -o run.h5
    /usr/bin/python3 bench/two_moons_iid.py --num-observations 5 --posterior run.h5 [run2.h5 ...]

The same --num-observations, --theta and --seed give the same observations.
"""
import argparse
import sys
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))
from c2st import c2st  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from two_moons_exact import log_likelihood  # noqa: E402

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("--num-observations", type=int, help="i.i.d. observations to draw (≥ 1)")
p.add_argument("--observation", help="use these observations instead of drawing them (CSV, header data_1,data_2)")
p.add_argument("--theta", default="0.3,-0.2", help="true parameters θ₀,θ₁ in (−1, 1)² (default 0.3,-0.2)")
p.add_argument("--seed", type=int, default=1, help="numpy seed of the observations and the exact draws")
p.add_argument("--write", help="write the observations here (CSV with fsbi's header data_1,data_2)")
p.add_argument("--posterior", nargs="*", default=[], help="fsbi run or posterior files (HDF5 with /posterior)")
args = p.parse_args()

theta_true = np.array([float(v) for v in args.theta.split(",")])
if theta_true.shape != (2,) or np.any(np.abs(theta_true) >= 1):
    sys.exit(f"--theta {args.theta}: need two values in (-1, 1)")
if (args.num_observations is None) == (args.observation is None):
    sys.exit("give one of --num-observations N and --observation FILE")
if args.num_observations is not None and args.num_observations < 1:
    sys.exit("--num-observations must be at least 1")

rng = np.random.default_rng(args.seed)


def simulate(theta, n):
    a = rng.uniform(-np.pi / 2, np.pi / 2, n)
    r = rng.normal(0.1, 0.01, n)
    z0 = (theta[0] + theta[1]) / np.sqrt(2)
    z1 = (theta[1] - theta[0]) / np.sqrt(2)
    return np.stack([r * np.cos(a) + 0.25 - abs(z0), r * np.sin(a) + z1], axis=1)


if args.observation:
    obs = np.loadtxt(args.observation, delimiter=",", skiprows=1, ndmin=2)
    print(f"{len(obs)} observations from {args.observation}:")
else:
    obs = simulate(theta_true, args.num_observations)
    print(f"{args.num_observations} observations at θ = {theta_true.tolist()} (seed {args.seed}):")
for row in obs:
    print(f"  {row[0]:.6f}, {row[1]:.6f}")
if args.write:
    with open(args.write, "w") as f:
        f.write("data_1,data_2\n")
        for row in obs:
            f.write(f"{row[0]!r},{row[1]!r}\n")
    print(f"wrote {args.write}")


def grid(lo0, hi0, lo1, hi1, m):
    g0, g1 = np.linspace(lo0, hi0, m), np.linspace(lo1, hi1, m)
    t0, t1 = np.meshgrid(g0, g1, indexing="ij")
    lp = log_likelihood(t0, t1, obs)  # the uniform prior is a constant inside the box
    return g0, g1, lp


# Coarse grid over the box, then a fine one over the cells within e^-30 of the maximum.
g0, g1, lp = grid(-1, 1, -1, 1, 2001)
if not np.isfinite(lp.max()):
    sys.exit("the observations have zero likelihood everywhere on the grid")
keep = lp > lp.max() - 30
i0, i1 = np.nonzero(keep)
step = g0[1] - g0[0]
lo0, hi0 = max(-1, g0[i0.min()] - 2 * step), min(1, g0[i0.max()] + 2 * step)
lo1, hi1 = max(-1, g1[i1.min()] - 2 * step), min(1, g1[i1.max()] + 2 * step)
g0, g1, lp = grid(lo0, hi0, lo1, hi1, 801)
w = np.exp(lp - lp.max())
w /= w.sum()
d0, d1 = g0[1] - g0[0], g1[1] - g1[0]
cells = rng.choice(w.size, size=10000, p=w.ravel())
c0, c1 = np.unravel_index(cells, w.shape)
exact = np.stack([g0[c0] + rng.uniform(-d0 / 2, d0 / 2, c0.size),
                  g1[c1] + rng.uniform(-d1 / 2, d1 / 2, c1.size)], axis=1)
print(f"exact posterior on an 801² grid over [{lo0:.4f}, {hi0:.4f}] × [{lo1:.4f}, {hi1:.4f}]")


def describe(samples):
    """Share with θ₀ + θ₁ > 0, and the mean and sd of each mode."""
    upper = samples[:, 0] + samples[:, 1] > 0
    modes = {}
    for name, sel in (("θ₀+θ₁>0", upper), ("θ₀+θ₁<0", ~upper)):
        part = samples[sel]
        modes[name] = (part.mean(axis=0), part.std(axis=0)) if len(part) > 1 else None
    return upper.mean(), modes


share, exact_modes = describe(exact)
print(f"exact: {100 * share:.1f}% in θ₀+θ₁>0; " + "; ".join(
    f"{k}: mean ({v[0][0]:+.4f}, {v[0][1]:+.4f}) sd ({v[1][0]:.4f}, {v[1][1]:.4f})"
    for k, v in exact_modes.items() if v is not None))

for path in args.posterior:
    with h5py.File(path, "r") as f:
        draws = np.asarray(f["posterior/theta"], dtype=np.float64)  # (chain, draw, parameter)
    samples = draws.reshape(-1, draws.shape[-1])
    if len(samples) > 10000:
        samples = samples[np.linspace(0, len(samples) - 1, 10000).astype(int)]
    share, modes = describe(samples)
    offsets = []
    for k, v in modes.items():
        ref = exact_modes.get(k)
        if v is None or ref is None:
            continue
        offsets.append(f"{k} mean off by ({(v[0][0] - ref[0][0]) / ref[1][0]:+.1f}, "
                       f"{(v[0][1] - ref[0][1]) / ref[1][1]:+.1f}) exact sd, sd ratio "
                       f"({v[1][0] / ref[1][0]:.2f}, {v[1][1] / ref[1][1]:.2f})")
    value = c2st(exact.astype(np.float32), samples.astype(np.float32))
    print(f"{path}: C2ST {value:.4f}, {100 * share:.1f}% in θ₀+θ₁>0; " + "; ".join(offsets))
