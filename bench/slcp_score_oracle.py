#!/usr/bin/python3
"""How well can a network of fsbi's kind represent slcp's likelihood score at all?

fsbi's default model fails on sbibm's slcp task (C2ST 0.99; bench/README.md). This script
separates the two possible causes in PyTorch, on the task's exact definition
(../shared/sbibm/TASKS.md):

* ``--objective ibp``: the integration-by-parts objective fsbi trains with,
  E[w(‖s‖² + 2∇u·s + 2sᵀ(∇u log π + ∇u log w))], exact divergence, optionally with a per-pair
  weight w = 1/(1 + ‖s‖²/c) computed from the network's own (detached) score, c the batch median
  (``--weight median``), which keeps the true score as the minimiser while flattening the
  heavy tail of ‖s‖²;
* ``--objective oracle``: plain regression on the analytic score (what no simulation-based
  method has; the best any score-matching objective could reach with this network and data),
  on ‖s − s*‖² or, with ``--relative``, on ‖s − s*‖²/(1 + ‖s*‖²).

* ``--objective nll`` (with ``--model gaussian``): maximum likelihood in x, as NLE trains.

* ``--objective joint`` (energy models): score matching of the joint density π(u)p(x|u) in
  (u, x): the integration-by-parts objective above in u plus ``--x-weight`` times Hyvärinen's
  in the standardised x, ‖∇x̂E‖² − 2Δx̂E. The x part fixes E up to a function of u, the u part up
  to a function of x, so together they pin −E = log p(x|u) up to a constant; the x part reads
  the precision in x directly, where the θ-score sees it only through a derivative.

``--model energy`` is fsbi's default model: a scalar E(u, x) from 2 × 256 SiLU on the
standardised (u, x) (fsbi feeds bounded features of u instead), score −∇u E. ``--model gaussian``
replaces the vector network by an energy of Gaussian form in the standardised x,
E = ½‖Lᵀ(x̂ − m)‖² − log det L, with m(u) and the Cholesky factor L(u) from a network of u alone
(the family slcp's likelihood belongs to).

``--min-abs-scale C`` keeps only prior draws with |θ₃|, |θ₄| > C (away from the singular score
near zero scale); ``--iid`` trains on the four 2-D points of each simulation as four pairs and
sums the four scores at evaluation (the i.i.d. structure fsbi's composition uses).

The network mirrors fsbi's vector model: inputs (u, x) standardised, 3 × 128 SiLU, score in the
logistic coordinates u of the box prior, Adam, 10 % validation, early stopping (patience 30),
float64. It prints the relative MSE E‖ŝ − s*‖²/E‖s*‖² and the median per-pair ‖ŝ − s*‖²/‖s*‖²
on 3000 fresh prior pairs and at sbibm's reference posterior samples with x = x_o.

    /usr/bin/python3 bench/slcp_score_oracle.py --objective oracle --relative --seed 1
"""
import argparse
import time
from pathlib import Path

import numpy as np
import torch

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("--objective", choices=["ibp", "oracle", "nll", "joint"], default="ibp",
               help="nll: maximum likelihood in x (--model gaussian only; the normalised Gaussian's −log p); "
                    "joint: score matching in (u, x) (--model energy or gaussian)")
p.add_argument("--x-weight", type=float, default=1.0, help="joint only: weight of the x part")
p.add_argument("--weight", choices=["none", "median"], default="none", help="ibp only")
p.add_argument("--relative", action="store_true", help="oracle only: relative regression")
p.add_argument("--min-abs-scale", type=float, default=0.0)
p.add_argument("--iid", action="store_true")
p.add_argument("--output", choices=["linear", "sinh"], default="linear",
               help="map of the last layer: linear (fsbi today) or sinh (spans orders of magnitude)")
p.add_argument("--model", choices=["vector", "gaussian", "energy"], default="vector",
               help="vector: the network's output is the score (fsbi's vector model); gaussian: an energy "
                    "E = ½‖Lᵀ(x̂ − m)‖² − log det L with m(u), L(u) from a network of u alone (a "
                    "conditional Gaussian likelihood, score −∇u E); energy: fsbi's default model, a scalar "
                    "E(u, x) from 2 × 256 SiLU, score −∇u E")
p.add_argument("--n", type=int, default=10000, help="simulations")
p.add_argument("--epochs", type=int, default=300)
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--seed", type=int, default=1)
p.add_argument("--obs", type=int, default=1)
p.add_argument("--sbibm", default=str(Path(__file__).resolve().parents[2] / "shared" / "sbibm"),
               help="sbibm data directory (default: ../shared/sbibm beside the project)")
a = p.parse_args()
if a.objective == "nll" and a.model != "gaussian":
    p.error("--objective nll needs --model gaussian (a normalised density in x)")
if a.objective == "joint" and a.model == "vector":
    p.error("--objective joint needs an energy (--model energy or gaussian): the x part differentiates E in x")
print(f"seed {a.seed}; {vars(a)}", flush=True)
torch.manual_seed(a.seed)
np.random.seed(a.seed)
torch.set_num_threads(1)
D = torch.float64
LO, HI, DIM = -3.0, 3.0, 5


def covariance(th):
    s1, s2, r = th[:, 2] ** 2, th[:, 3] ** 2, torch.tanh(th[:, 4])
    return torch.stack([torch.stack([s1 ** 2 + 1e-6, r * s1 * s2], -1),
                        torch.stack([r * s1 * s2, s2 ** 2 + 1e-6], -1)], -2)


def simulate(th):
    C = torch.linalg.cholesky(covariance(th))
    e = torch.randn(th.shape[0], 4, 2, dtype=D)
    return (th[:, None, :2] + torch.einsum("nij,nkj->nki", C, e)).reshape(-1, 8)


def loglik(th, x):
    k = x.shape[1] // 2
    dist = torch.distributions.MultivariateNormal(th[:, None, :2].expand(-1, k, -1),
                                                  covariance(th)[:, None].expand(-1, k, -1, -1))
    return dist.log_prob(x.reshape(-1, k, 2)).sum(1)


def true_score_theta(th, x):
    th = th.clone().requires_grad_(True)
    return torch.autograd.grad(loglik(th, x).sum(), th)[0]


def dtheta_du(u):
    s = torch.sigmoid(u)
    return (HI - LO) * s * (1 - s)


def prior_score_u(u):  # ∇u log π_u for the box prior in logistic coordinates
    return 1 - 2 * torch.sigmoid(u)


def u_of_theta(th):
    q = (th - LO) / (HI - LO)
    return torch.log(q) - torch.log1p(-q)


th = LO + (HI - LO) * torch.rand(a.n, DIM, dtype=D)
if a.min_abs_scale > 0:
    th = th[(th[:, 2].abs() > a.min_abs_scale) & (th[:, 3].abs() > a.min_abs_scale)]
x = simulate(th)
if a.iid:
    th, x = th.repeat_interleave(4, 0), x.reshape(-1, 2)
n = th.shape[0]
u = u_of_theta(th)
xm, xs, um, us = x.mean(0), x.std(0), u.mean(0), u.std(0)
target_u = true_score_theta(th, x) * dtheta_du(u)
print(f"{n} training pairs", flush=True)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        k = x.shape[1]
        self.f = torch.nn.Sequential(torch.nn.Linear(DIM + k, 128), torch.nn.SiLU(),
                                     torch.nn.Linear(128, 128), torch.nn.SiLU(),
                                     torch.nn.Linear(128, 128), torch.nn.SiLU(), torch.nn.Linear(128, DIM))

    def forward(self, uu, xx):  # the score in u
        out = self.f(torch.cat([(uu - um) / us, (xx - xm) / xs], 1))
        return (torch.sinh(out) if a.output == "sinh" else out) / us


class GaussianNet(torch.nn.Module):
    """Energy E(u, x) = ½‖Lᵀ(x̂ − m)‖² − Σ log L_ii, L lower triangular with
    L_ii = exp(·): a conditional Gaussian in the standardised x̂ whose mean and precision
    LLᵀ depend on u; the score is −∇u E."""

    def __init__(self):
        super().__init__()
        k = x.shape[1]
        self.k = k
        self.tril = torch.tril_indices(k, k)
        self.g = torch.nn.Sequential(torch.nn.Linear(DIM, 128), torch.nn.SiLU(),
                                     torch.nn.Linear(128, 128), torch.nn.SiLU(),
                                     torch.nn.Linear(128, 128), torch.nn.SiLU(),
                                     torch.nn.Linear(128, k + len(self.tril[0])))

    def energy(self, uu, xx):
        zu, zx = (uu - um) / us, (xx - xm) / xs
        out = self.g(zu)
        m, lv = out[:, :self.k], out[:, self.k:]
        L = torch.zeros(uu.shape[0], self.k, self.k, dtype=uu.dtype)
        L[:, self.tril[0], self.tril[1]] = lv
        diag = torch.diagonal(L, dim1=1, dim2=2)
        L = L - torch.diag_embed(diag) + torch.diag_embed(torch.exp(diag))
        r = torch.einsum("nji,nj->ni", L, zx - m)
        return 0.5 * (r * r).sum(1) - diag.sum(1)

    def forward(self, uu, xx):  # the score in u
        with torch.enable_grad():
            if not uu.requires_grad:
                uu = uu.clone().requires_grad_(True)
            e = self.energy(uu, xx)
            return -torch.autograd.grad(e.sum(), uu, create_graph=True)[0]


class EnergyNet(torch.nn.Module):
    """fsbi's default model: a scalar E(u, x) of the standardised inputs, score −∇u E."""

    def __init__(self):
        super().__init__()
        self.f = torch.nn.Sequential(torch.nn.Linear(DIM + x.shape[1], 256), torch.nn.SiLU(),
                                     torch.nn.Linear(256, 256), torch.nn.SiLU(), torch.nn.Linear(256, 1))

    def energy(self, uu, xx):
        return self.f(torch.cat([(uu - um) / us, (xx - xm) / xs], 1))[:, 0]

    def forward(self, uu, xx):  # the score in u
        with torch.enable_grad():
            if not uu.requires_grad:
                uu = uu.clone().requires_grad_(True)
            return -torch.autograd.grad(self.energy(uu, xx).sum(), uu, create_graph=True)[0]


net = {"vector": Net, "gaussian": GaussianNet, "energy": EnergyNet}[a.model]().double()


def loss(idx):
    uu, xx = u[idx], x[idx]
    if a.objective == "nll":
        return net.energy(uu, xx).mean()
    if a.objective == "oracle":
        r = ((net(uu, xx) - target_u[idx]) ** 2).sum(1)
        return (r / (1 + (target_u[idx] ** 2).sum(1)) if a.relative else r).mean()
    if a.objective == "joint":
        uu = uu.clone().requires_grad_(True)
        xh = ((xx - xm) / xs).clone().requires_grad_(True)  # differentiate in the standardised x
        gu, gx = torch.autograd.grad(net.energy(uu, xh * xs + xm).sum(), (uu, xh), create_graph=True)
        lap_u = sum(torch.autograd.grad(gu[:, j].sum(), uu, create_graph=True)[0][:, j] for j in range(DIM))
        lap_x = sum(torch.autograd.grad(gx[:, j].sum(), xh, create_graph=True)[0][:, j] for j in range(xh.shape[1]))
        s = -gu
        u_part = (s * s).sum(1) - 2 * lap_u + 2 * (s * prior_score_u(uu)).sum(1)
        return (u_part + a.x_weight * ((gx * gx).sum(1) - 2 * lap_x)).mean()
    uu = uu.clone().requires_grad_(True)
    s = net(uu, xx)
    J = torch.stack([torch.autograd.grad(s[:, j].sum(), uu, create_graph=True)[0] for j in range(DIM)], 1)
    div = J.diagonal(dim1=1, dim2=2).sum(1)
    prior_score = prior_score_u(uu)
    q = (s * s).sum(1).detach()
    if a.weight == "median":
        c = q.median()
        w = 1 / (1 + q / c)
        grad_log_w = -2 * torch.einsum("nj,njk->nk", s.detach(), J.detach()) / (c + q)[:, None]
    else:
        w, grad_log_w = torch.ones_like(q), torch.zeros_like(s)
    per_pair = (s * s).sum(1) + 2 * div + 2 * (s * (prior_score + grad_log_w)).sum(1)
    return (w * per_pair).sum() / w.sum()


def errors(thq, xq):
    uq = u_of_theta(thq)
    with torch.no_grad():
        if a.iid:
            s = sum(net(uq, xq[:, 2 * j:2 * j + 2]) for j in range(4)) / dtheta_du(uq)
        else:
            s = net(uq, xq) / dtheta_du(uq)
    t = true_score_theta(thq, xq)
    e, t2 = ((s - t) ** 2).sum(1), (t ** 2).sum(1)
    return f"rel. MSE {e.mean().item() / t2.mean().item():.3g}, median {(e / t2).median().item():.3g}"


def csv(name):
    return np.loadtxt(f"{a.sbibm}/slcp/obs_{a.obs}/{name}", delimiter=",", skiprows=1)


ref = torch.tensor(csv("reference_posterior_samples.csv"), dtype=D)[:3000]
xo = torch.tensor(csv("observation.csv"), dtype=D).reshape(1, 8).expand(ref.shape[0], -1)
th_fresh = LO + (HI - LO) * torch.rand(3000, DIM, dtype=D)
x_fresh = simulate(th_fresh)

perm = torch.randperm(n)
val, train = perm[: n // 10], perm[n // 10:]
opt = torch.optim.Adam(net.parameters(), lr=a.lr)
best, since, state, t0 = float("inf"), 0, None, time.time()
for ep in range(a.epochs):
    order = train[torch.randperm(len(train))]
    for b in range(0, len(order), 256):
        opt.zero_grad()
        loss(order[b:b + 256]).backward()
        opt.step()
    v = sum(loss(val[b:b + 1000]).item() * len(val[b:b + 1000]) for b in range(0, len(val), 1000)) / len(val)
    if v < best:
        best, since, state = v, 0, {k: t.clone() for k, t in net.state_dict().items()}
    else:
        since += 1
    if ep % 25 == 0 or since > 30:
        print(f"epoch {ep}: validation {v:.4g}; fresh pairs {errors(th_fresh, x_fresh)}; "
              f"reference posterior {errors(ref, xo)}; {time.time() - t0:.0f} s", flush=True)
    if since > 30:
        break
net.load_state_dict(state)
print(f"best epoch: fresh pairs {errors(th_fresh, x_fresh)}; reference posterior {errors(ref, xo)}")
