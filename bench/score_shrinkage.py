#!/usr/bin/python3
"""Is the learned score shrunk, and do residualised inputs remove that? (gaussian_linear, PyTorch)

fsbi's trained score on gaussian_linear (10 parameters, x = θ + N(0, 0.1·I), prior N(0, I)) is
shrunk towards zero, most near the mean of the training θ's (docs/sequential.md, "What it gains").
This script trains a model of fsbi's default kind — a scalar energy from 2 × 256 SiLU on the
standardised (θ, x), the integration-by-parts objective with exact divergence, Adam at 2·10⁻³ in
batches of 128, 10 % validation, patience 30 — on N prior pairs, and prints at the posterior of
sbibm's observation 1 scaled by 0 (a posterior at the prior's mean, "f0") and by 1 ("f2"), x = x_o,
the relative error E‖ŝ − s‖²/E‖s‖² and the slope of ŝ − s regressed on s (−0.13: shrunk by 13 %).

MODE plain feeds the standardised x; MODE resid feeds its residual after a least-squares
regression on the standardised θ (re-standardised) — the same function class (the first layer is
linear), parameterised so that the direction the score varies in, x − θ, has unit spread.

    /usr/bin/python3 bench/score_shrinkage.py plain|resid SEED [N]
"""
import sys
import time
from pathlib import Path

import numpy as np
import torch

if len(sys.argv) < 3 or sys.argv[1] not in ("plain", "resid"):
    sys.exit("usage: bench/score_shrinkage.py plain|resid SEED [N]")
torch.set_num_threads(1); D=torch.float64
mode=sys.argv[1]; seed=int(sys.argv[2]); n=int(sys.argv[3]) if len(sys.argv)>3 else 3000
torch.manual_seed(seed); rng=np.random.default_rng(seed)
d=10
th=torch.tensor(rng.standard_normal((n,d)),dtype=D); x=th+np.sqrt(0.1)*torch.tensor(rng.standard_normal((n,d)),dtype=D)
tm,ts,xm,xs=th.mean(0),th.std(0),x.mean(0),x.std(0)
zt,zx=(th-tm)/ts,(x-xm)/xs
if mode=='resid':
    B=torch.linalg.lstsq(zt,zx).solution  # zx ≈ zt B
    r=zx-zt@B; rs=r.std(0)
else:
    B=torch.zeros(d,d,dtype=D); rs=torch.ones(d,dtype=D)
net=torch.nn.Sequential(torch.nn.Linear(2*d,256),torch.nn.SiLU(),torch.nn.Linear(256,256),torch.nn.SiLU(),torch.nn.Linear(256,1)).double()
with torch.no_grad(): net[4].weight.mul_(0.1)
def energy(t,xx):
    a=(t-tm)/ts; b=(xx-xm)/xs
    b=(b-a@B)/rs
    return net(torch.cat([a,b],1))[:,0]
def score(t,xx):  # −∇θ E and the θ it was taken at (for the divergence)
    t=t.clone().requires_grad_(True)
    e=energy(t,xx); g=torch.autograd.grad(e.sum(),t,create_graph=True)[0]
    return -g,t
def loss(idx):
    s,t=score(th[idx],x[idx])
    div=sum(torch.autograd.grad(s[:,j].sum(),t,create_graph=True)[0][:,j] for j in range(d))
    return ((s*s).sum(1)+2*div+2*(s*(-t)).sum(1)).mean()
perm=torch.randperm(n); val,tr=perm[:n//10],perm[n//10:]
opt=torch.optim.Adam(net.parameters(),lr=2e-3); best=1e9; since=0
xo=torch.tensor(np.loadtxt(str(Path(__file__).resolve().parents[2] / 'shared' / 'sbibm' / 'gaussian_linear' / 'obs_1' / 'observation.csv'),delimiter=',',skiprows=1),dtype=D)
def slope(f):
    xx=(xo*f).expand(5000,d); c=xx[0]/1.1
    g=torch.Generator().manual_seed(2); T=c+np.sqrt(0.1/1.1)*torch.randn(5000,d,generator=g,dtype=D)
    s,_=score(T,xx); s=s.detach(); st=(xx-T)/0.1; e=s-st
    return f"rel {((e**2).sum(1).mean()/(st**2).sum(1).mean()).item():.4f} slope {((e*st).sum()/(st*st).sum()).item():.3f}"
t0=time.time()
for ep in range(400):
    o=tr[torch.randperm(len(tr))]
    for b in range(0,len(o)-127,128):
        opt.zero_grad(); loss(o[b:b+128]).backward(); opt.step()
    v=loss(val).item()
    if v<best: best,since,state=v,0,{k:t.clone() for k,t in net.state_dict().items()}
    else: since+=1
    if since>30: break
net.load_state_dict(state)
print(mode,seed,n,'epochs',ep,'best',round(best,2),'f0',slope(0.0),'| f2',slope(1.0),f'{time.time()-t0:.0f}s',flush=True)
