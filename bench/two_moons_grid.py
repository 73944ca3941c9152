#!/usr/bin/python3
"""A two_moons model's posterior on a grid, against the exact one, mode by mode.

two_moons has two parameters, so the posterior a trained energy model implies can be computed
without any sampler: `fsbi score --log-likelihood` gives the model's log p̂(x_o | θ) (up to a
constant) on a grid, and the task's definition gives the exact likelihood (two_moons_exact.py,
shared with two_moons_iid.py). The prior is uniform on [−1, 1]².

For each of the two modes (θ₁ + θ₂ > 0 and < 0) it prints, for draws from the grid posterior of
the exact likelihood, of the model, and (with --samples) of a posterior sample file: quantiles of
the distance to the nearest face of the box, and of θ₁ − θ₂ (the position along the crescent);
then the log of each mode's posterior mass under the model and exactly — the difference of the two
modes' masses is the model's mode offset, which MALA's chains hide when they do not cross between
the modes (docs/sampling.md#many-short-chains).

    /usr/bin/python3 bench/two_moons_grid.py --model RUN.h5 \\
        --observation <sbibm>/two_moons/obs_10/observation.csv --samples RUN.h5 \\
        --box 0.3,0.9995,-0.9995,-0.3
"""
import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from two_moons_exact import log_likelihood  # noqa: E402

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("--model", required=True, help="fsbi model or run file (an energy model of two_moons)")
p.add_argument("--observation", required=True, help="CSV, one row (header optional)")
p.add_argument("--samples", help="fsbi run or posterior file whose /posterior/theta to compare as well")
p.add_argument("--box", default="-0.9995,0.9995,-0.9995,0.9995",
               help="grid region θ₁ from,to,θ₂ from,to (inside the prior [−1, 1]²)")
p.add_argument("--points", type=int, default=500, help="grid points per axis")
p.add_argument("--fsbi", default=str(Path(__file__).resolve().parents[1] / "build" / "bin" / "fsbi"))
a = p.parse_args()

with open(a.observation) as f:
    lines = [line for line in f.read().splitlines() if line.strip()]
try:
    x = np.array([float(v) for v in lines[-1].split(",")]) if len(lines) in (1, 2) else np.zeros(0)
except ValueError:
    x = np.zeros(0)
if x.size != 2:
    p.error(f"{a.observation}: expected one row of two numbers (a two_moons observation, after an "
            f"optional header row)")
try:
    lo1, hi1, lo2, hi2 = (float(v) for v in a.box.split(","))
except ValueError:
    p.error(f"--box {a.box}: give four numbers θ₁ from,to,θ₂ from,to, e.g. 0.3,0.9995,-0.9995,-0.3")
if not (-1 < lo1 < hi1 < 1 and -1 < lo2 < hi2 < 1):
    p.error(f"--box {a.box}: the region must lie inside the prior's open box (−1, 1)² with from < to")
g1, g2 = np.linspace(lo1, hi1, a.points), np.linspace(lo2, hi2, a.points)
grid = np.array([(u, v) for u in g1 for v in g2])
cell = np.array([g1[1] - g1[0], g2[1] - g2[0]])

with tempfile.TemporaryDirectory() as tmp:
    t, xs, out = (Path(tmp) / n for n in ("theta.csv", "x.csv", "score.csv"))
    np.savetxt(t, grid, delimiter=",", header="theta_1,theta_2", comments="")
    np.savetxt(xs, np.tile(x, (len(grid), 1)), delimiter=",", header="x_1,x_2", comments="")
    if subprocess.run([a.fsbi, "score", "-m", a.model, "--theta", str(t), "--x", str(xs), "-o", str(out),
                       "--log-likelihood"], stdout=subprocess.DEVNULL).returncode != 0:
        sys.exit(f"two_moons_grid.py: `fsbi score` failed on {a.model} (its message is above)")
    model_ll = np.loadtxt(out, delimiter=",", skiprows=1)[:, 2]


true_ll = log_likelihood(grid[:, 0], grid[:, 1], x)
rng = np.random.default_rng(0)


def draws(ll, n=200_000):
    if not np.isfinite(ll).any():
        return None
    w = np.exp(ll - ll[np.isfinite(ll)].max())
    i = rng.choice(len(grid), n, p=w / w.sum())
    jittered = grid[i] + rng.uniform(-0.5, 0.5, (n, 2)) * cell  # uniform within the cell,
    return np.clip(jittered, [lo1, lo2], [hi1, hi2])              # kept inside the grid's region


def describe(name, th):
    if th is None or len(th) == 0:
        print(f"  {name:8s} no mass in this mode within --box")
        return
    d = np.minimum(1 - np.abs(th[:, 0]), 1 - np.abs(th[:, 1]))
    print(f"  {name:8s} distance to a face q05/q25/q50/q75 {np.round(np.quantile(d, [.05, .25, .5, .75]), 3)}; "
          f"θ₁ − θ₂ q05/q50/q95 {np.round(np.quantile(th[:, 0] - th[:, 1], [.05, .5, .95]), 3)}")


sampled = None
if a.samples:
    theta = h5py.File(a.samples, "r")["/posterior/theta"][()]
    sampled = theta.reshape(-1, theta.shape[-1])
print(f"grid {a.points} × {a.points} over θ₁ ∈ [{lo1}, {hi1}], θ₂ ∈ [{lo2}, {hi2}]; x_o = {x}")
modes = {sign: np.sign(grid.sum(1)) == sign for sign in (1, -1)}
for sign, label in ((1, "θ₁ + θ₂ > 0"), (-1, "θ₁ + θ₂ < 0")):
    mode = modes[sign]
    print(f"mode {label}:")
    describe("exact", draws(np.where(mode, true_ll, -np.inf)))
    describe("model", draws(np.where(mode, model_ll, -np.inf)))
    if sampled is not None:
        describe("samples", sampled[np.sign(sampled.sum(1)) == sign])
        print(f"  samples: share {np.mean(np.sign(sampled.sum(1)) == sign):.3f}")
for name, ll in (("model", model_ll), ("exact", true_ll)):
    top = ll[np.isfinite(ll)].max()
    with np.errstate(divide="ignore"):
        mass = [np.log(np.exp(ll[modes[sign]] - top).sum()) for sign in (1, -1)]
    print(f"log mass of θ₁ + θ₂ > 0 minus θ₁ + θ₂ < 0, {name}: {mass[0] - mass[1]:.2f} nats "
          f"(share of the first: {1 / (1 + np.exp(mass[1] - mass[0])):.3f})")
