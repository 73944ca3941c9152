#!/usr/bin/python3
"""PyTorch reference for fsbi's training-step throughput (exact-divergence "ibp" objective).

Same network and objective as fsbi (framework/src/nn/score_network.hpp):

  * MLP on concat(z, x) (d + k inputs) -> 3 hidden layers of width 128, SiLU -> linear output,
    d outputs (vector model) or 1 output (energy model); float32; Glorot-uniform weights,
    zero biases, output layer scaled by 0.1 (as ScoreNetwork::initialize).
  * Box feature map z = sqrt(3) tanh(u/2), dz = g'(u), d2z = g''(u) (elementwise), u ~ N(0, 1).
  * vector: s_u = dz * N(z, x);  energy: s_u = -dz * grad_z E(z, x)  (autograd, create_graph).
  * per sample: |s|^2 + 2 div_u s + 2 s.p  (p = grad_u log pi_u, random data); loss = batch mean.
  * one training step = forward + exact divergence + loss.backward() + Adam step.

Divergence formulations (--method; "auto" times them all on the first config and keeps the
fastest; --compare times all of them on every config):
  loop        d reverse passes: autograd.grad(h[:, j].sum(), w, create_graph=True)
  batched_vjp one batched reverse pass: autograd.grad(h, w, grad_outputs=I_d (batched),
              is_grads_batched=True, create_graph=True)  (= what
              autograd.functional.jacobian(vectorize=True) does, without its extra forward)
  jacobian    torch.autograd.functional.jacobian(lambda w: h(w).sum(0), w, vectorize=True,
              create_graph=True) -> (d, B, d), diagonal blocks (samples are independent, so
              summing over the batch first gives the per-sample blocks; the literal B*d x B*d
              Jacobian would cost B times more). h itself is one extra forward.
  vmap_jacrev functorch.vmap(functorch.jacrev(h_one_sample, has_aux=True))
  vmap_jacfwd functorch.vmap(functorch.jacfwd(h_one_sample, has_aux=True))  (forward mode;
              for the energy model forward-over-reverse: jacfwd(functorch.grad(E)))
(torch 1.13 has no torch.func; functorch 1.13 ships the same transforms.)

Coordinates (--coords):
  data  z, dz, d2z are given as data (as fsbi gets them); differentiate w.r.t. z and assemble
        div = sum_j d2z_j h_j + dz_j^2 dh_j/dz_j   (h = N, or h = -grad_z E for energy)
  u     z and dz computed from u inside the graph; differentiate s_u w.r.t. u directly, so
        autograd applies the chain rule through z.

Threads: OPENBLAS_NUM_THREADS=1 is forced before torch is imported (Debian's torch with a
threaded OpenBLAS otherwise oversubscribes the cores); torch.set_num_threads(--threads).

Usage:
  /usr/bin/python3 bench/torch_reference.py --check
  /usr/bin/python3 bench/torch_reference.py [--threads 2] [--method auto] [--coords auto]
        [--seconds 3] [--repeats 3] [--batch 256] [--sizes 2x2,5x10,10x10] [--models vector,energy]
        [--compare] [--flops] [--blas /path/to/libblas.so.3]
"""

import argparse
import ctypes
import os
import sys
import time

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # must precede `import torch`


def _preload_blas(argv):
    """--blas PATH: load that libblas.so.3 (global) before torch, so torch's libblas.so.3
    dependency resolves to it (same soname) without touching the system alternatives."""
    for i, a in enumerate(argv):
        path = None
        if a == "--blas" and i + 1 < len(argv):
            path = argv[i + 1]
        elif a.startswith("--blas="):
            path = a.split("=", 1)[1]
        if path:
            ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)


_preload_blas(sys.argv)

import torch  # noqa: E402
from torch import nn  # noqa: E402

try:
    import functorch  # noqa: E402
except ImportError:  # pragma: no cover
    functorch = None

SQRT3 = 3.0 ** 0.5
METHODS = ["loop", "batched_vjp", "jacobian", "vmap_jacrev", "vmap_jacfwd"]
COORDS = ["data", "u"]


def loaded_blas():
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                p = line.split()[-1]
                if ("blas" in p or "lapack" in p or "mkl" in p) and p.startswith("/"):
                    libs.add(os.path.realpath(p))
    except OSError:
        pass
    return sorted(libs)


# ----------------------------------------------------------------------------------------------
# Model and coordinates


def make_mlp(d, k, kind, width=128, depth=3, dtype=torch.float32):
    out = d if kind == "vector" else 1
    dims = [d + k] + [width] * depth + [out]
    layers = []
    for i in range(len(dims) - 1):
        lin = nn.Linear(dims[i], dims[i + 1], dtype=dtype)
        nn.init.xavier_uniform_(lin.weight)
        nn.init.zeros_(lin.bias)
        if i == len(dims) - 2:
            with torch.no_grad():
                lin.weight.mul_(0.1)
        layers.append(lin)
        if i < len(dims) - 2:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


def features(u):
    t = torch.tanh(0.5 * u)
    one_m = 1.0 - t * t
    z = SQRT3 * t
    dz = (0.5 * SQRT3) * one_m
    d2z = -(0.5 * SQRT3) * t * one_m
    return z, dz, d2z


def make_batches(d, k, batch, n, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        u = torch.randn(batch, d, generator=g, dtype=dtype)
        x = torch.randn(batch, k, generator=g, dtype=dtype)
        p = torch.randn(batch, d, generator=g, dtype=dtype)
        z, dz, d2z = features(u)
        out.append(dict(u=u, x=x, p=p, z=z, dz=dz, d2z=d2z))
    return out


# ----------------------------------------------------------------------------------------------
# h(w): the row-wise map whose Jacobian diagonal we need.
#   coords=data: w = z, h = N(z, x) (vector) or grad_z E (energy)
#   coords=u:    w = u, h = s_u(u) itself


def h_batch(net, kind, coords, w, x):
    """Batched h (B x d); w must require grad (the graph to w is kept)."""
    if coords == "data":
        if kind == "vector":
            return net(torch.cat([w, x], dim=1))
        e = net(torch.cat([w, x], dim=1))
        return torch.autograd.grad(e.sum(), w, create_graph=True)[0]
    z, dz, _ = features(w)
    if kind == "vector":
        return dz * net(torch.cat([z, x], dim=1))
    e = net(torch.cat([z, x], dim=1))
    return -torch.autograd.grad(e.sum(), w, create_graph=True)[0]  # = -dz * grad_z E


def h_one(net, kind, coords):
    """Per-sample h for functorch: (w_i [d], x_i [k]) -> h_i [d]."""
    if kind == "vector":
        if coords == "data":
            def h(w, x):
                return net(torch.cat([w, x]))
        else:
            def h(w, x):
                z, dz, _ = features(w)
                return dz * net(torch.cat([z, x]))
        return h
    if coords == "data":
        def energy(w, x):
            return net(torch.cat([w, x]))[0]
        g = functorch.grad(energy)

        def h(w, x):
            return g(w, x)
        return h

    def energy_u(w, x):
        z, _, _ = features(w)
        return net(torch.cat([z, x]))[0]
    g = functorch.grad(energy_u)

    def h(w, x):
        return -g(w, x)
    return h


def value_and_diag(net, kind, coords, method, w, x, eye_cache):
    """h (B x d) and diag(dh_j/dw_j) (B x d), differentiable w.r.t. the parameters."""
    d = w.shape[1]
    if method in ("vmap_jacrev", "vmap_jacfwd"):
        h1 = h_one(net, kind, coords)

        def with_aux(wi, xi):
            v = h1(wi, xi)
            return v, v
        jac = functorch.jacrev if method == "vmap_jacrev" else functorch.jacfwd
        J, h = functorch.vmap(jac(with_aux, has_aux=True))(w, x)  # J: B x d x d
        return h, torch.diagonal(J, dim1=1, dim2=2)
    w = w.detach().requires_grad_(True)
    if method == "jacobian":
        h = h_batch(net, kind, coords, w, x)
        J = torch.autograd.functional.jacobian(
            lambda ww: h_batch(net, kind, coords, ww, x).sum(0), w,
            create_graph=True, vectorize=True)  # d x B x d
        return h, torch.diagonal(J, dim1=0, dim2=2)  # B x d
    h = h_batch(net, kind, coords, w, x)
    if method == "loop":
        cols = [torch.autograd.grad(h[:, j].sum(), w, create_graph=True)[0][:, j]
                for j in range(d)]
        return h, torch.stack(cols, dim=1)
    if method == "batched_vjp":
        key = (d, h.shape[0], h.dtype)
        if key not in eye_cache:
            eye_cache[key] = torch.eye(d, dtype=h.dtype).unsqueeze(1).expand(d, h.shape[0], d)
        G = torch.autograd.grad(h, w, grad_outputs=eye_cache[key], create_graph=True,
                                is_grads_batched=True)[0]  # d x B x d
        return h, torch.diagonal(G, dim1=0, dim2=2)
    raise ValueError(method)


def score_and_div(net, kind, coords, method, b, eye_cache):
    if coords == "data":
        h, diag = value_and_diag(net, kind, coords, method, b["z"], b["x"], eye_cache)
        sign = 1.0 if kind == "vector" else -1.0
        s = sign * b["dz"] * h
        div = sign * (b["d2z"] * h + b["dz"] * b["dz"] * diag).sum(1)
        return s, div
    s, diag = value_and_diag(net, kind, coords, method, b["u"], b["x"], eye_cache)
    return s, diag.sum(1)


def loss_fn(net, kind, coords, method, b, eye_cache):
    s, div = score_and_div(net, kind, coords, method, b, eye_cache)
    per = (s * s).sum(1) + 2.0 * div + 2.0 * (s * b["p"]).sum(1)
    return per.mean()


# ----------------------------------------------------------------------------------------------
# Benchmark


def make_step(net, opt, kind, coords, method):
    eye_cache = {}

    def step(b):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net, kind, coords, method, b, eye_cache)
        loss.backward()
        opt.step()
        return loss
    return step


def time_config(kind, d, k, coords, method, batch, seconds, repeats, warmup_s=0.5):
    torch.manual_seed(1)
    net = make_mlp(d, k, kind)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    step = make_step(net, opt, kind, coords, method)
    batches = make_batches(d, k, batch, 8, torch.float32)
    t0 = time.perf_counter()
    i = 0
    while time.perf_counter() - t0 < warmup_s or i < 5:
        step(batches[i % len(batches)])
        i += 1
    rates = []
    for _ in range(repeats):
        n = 0
        t0 = time.perf_counter()
        while True:
            step(batches[n % len(batches)])
            n += 1
            el = time.perf_counter() - t0
            if el >= seconds:
                break
        rates.append(n * batch / el)
    return rates


def count_flops(kind, d, k, coords, method, batch):
    """Matrix-product flops of one step as counted by torch.profiler (aten::mm/addmm/bmm...)."""
    from torch.profiler import profile, ProfilerActivity
    torch.manual_seed(1)
    net = make_mlp(d, k, kind)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    step = make_step(net, opt, kind, coords, method)
    b = make_batches(d, k, batch, 1, torch.float32)[0]
    step(b)
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        step(b)
    return sum(e.flops for e in prof.key_averages() if e.flops)


def run_bench(args):
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}  functorch {getattr(functorch, '__version__', 'n/a')}  "
          f"get_num_threads()={torch.get_num_threads()}  "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}")
    print("BLAS loaded: " + (", ".join(loaded_blas()) or "?"))
    try:
        print("load average: %.2f %.2f %.2f" % os.getloadavg())
    except OSError:
        pass
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    models = args.models.split(",")
    methods = METHODS if args.method == "auto" or args.compare else [args.method]
    coords_list = COORDS if args.coords == "auto" or args.compare else [args.coords]
    print(f"batch {args.batch}, >= {args.seconds:g} s per timing, best of {args.repeats}")

    for kind in models:
        chosen = None
        if not args.compare and (len(methods) > 1 or len(coords_list) > 1):
            # pick the fastest formulation on this model's largest size (short timings)
            d, k = max(sizes)
            best = None
            print(f"\nselecting formulation for {kind} at d={d}, k={k}:")
            for c in coords_list:
                for m in methods:
                    r = max(time_config(kind, d, k, c, m, args.batch, 1.0, 2, 0.3))
                    print(f"  {c:5s} {m:12s} {r:10.0f} samples/s")
                    if best is None or r > best[0]:
                        best = (r, c, m)
            chosen = [(best[1], best[2])]
            print(f"  -> {best[1]} / {best[2]}")
        combos = chosen or [(c, m) for c in coords_list for m in methods]
        print(f"\n{'model':7s} {'d':>3s} {'k':>3s} {'coords':6s} {'method':12s} "
              f"{'samples/s':>10s} {'(all runs)':s}" + ("   MFLOP/step" if args.flops else ""))
        for d, k in sizes:
            for c, m in combos:
                rates = time_config(kind, d, k, c, m, args.batch, args.seconds, args.repeats)
                line = (f"{kind:7s} {d:3d} {k:3d} {c:6s} {m:12s} {max(rates):10.0f} "
                        f"({', '.join('%.0f' % r for r in rates)})")
                if args.flops:
                    line += "   %.2f" % (count_flops(kind, d, k, c, m, args.batch) / 1e6)
                print(line, flush=True)
    try:
        print("\nload average at end: %.2f %.2f %.2f" % os.getloadavg())
    except OSError:
        pass


# ----------------------------------------------------------------------------------------------
# --check: divergence against finite differences (float64, tiny case), and all formulations
# agree on the loss and its parameter gradient.


def reference_score(net, kind, u, x):
    """s_u straight from the definitions (no divergence machinery)."""
    z, dz, _ = features(u)
    if kind == "vector":
        return dz * net(torch.cat([z, x], dim=1))
    zz = z.detach().requires_grad_(True)
    e = net(torch.cat([zz, x], dim=1))
    gz = torch.autograd.grad(e.sum(), zz)[0]
    return -dz * gz


def run_check(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(3)
    d, k, B, eps = 3, 2, 5, 1e-5
    dt = torch.float64
    ok = True
    print(f"torch {torch.__version__}; check: d={d} k={k} batch={B} float64, central FD h={eps}")
    for kind in ("vector", "energy"):
        net = make_mlp(d, k, kind, width=16, dtype=dt)
        # larger output layer so the score is not tiny
        with torch.no_grad():
            net[-1].weight.mul_(30.0)
        b = make_batches(d, k, B, 1, dt, seed=7)[0]
        u, x = b["u"], b["x"]
        # FD divergence of u -> s_u (through z(u), dz(u))
        fd = torch.zeros(B, dtype=dt)
        for j in range(d):
            e = torch.zeros(d, dtype=dt)
            e[j] = eps
            sp = reference_score(net, kind, u + e, x)[:, j]
            sm = reference_score(net, kind, u - e, x)[:, j]
            fd += ((sp - sm) / (2 * eps)).detach()
        s_ref = reference_score(net, kind, u, x).detach()
        if kind == "energy":
            # s_u = -grad_u E against FD of E(z(u), x)
            def E(uu):
                zz, _, _ = features(uu)
                return net(torch.cat([zz, x], dim=1))[:, 0].detach()
            fds = torch.stack([-(E(u + eps * torch.eye(d, dtype=dt)[j])
                                 - E(u - eps * torch.eye(d, dtype=dt)[j])) / (2 * eps)
                               for j in range(d)], dim=1)
            err = (s_ref - fds).abs().max().item()
            good = err < 1e-7
            ok &= good
            print(f"  {kind:6s} s_u = -grad_u E vs FD: max abs err {err:.2e} "
                  f"{'ok' if good else 'FAIL'}")
        grads0 = loss0 = None
        for c in COORDS:
            for m in METHODS:
                net.zero_grad(set_to_none=True)
                s, div = score_and_div(net, kind, c, m, b, {})
                err_div = (div.detach() - fd).abs().max().item()
                err_s = (s.detach() - s_ref).abs().max().item()
                loss = ((s * s).sum(1) + 2 * div + 2 * (s * b["p"]).sum(1)).mean()
                loss.backward()
                g = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                               for p in net.parameters()])  # energy: output bias has none
                if grads0 is None:
                    grads0, loss0 = g.clone(), loss.item()
                dg = ((g - grads0).abs().max() / grads0.abs().max()).item()
                dl = abs(loss.item() - loss0)
                good = err_div < 1e-7 and err_s < 1e-12 and dg < 1e-10 and dl < 1e-12
                ok &= good
                print(f"  {kind:6s} {c:4s} {m:12s} |div-FD| {err_div:.1e}  |s-ref| {err_s:.1e}  "
                      f"loss {loss.item():+.12f}  rel dgrad {dg:.1e}  {'ok' if good else 'FAIL'}")
        print(f"  {kind:6s} |div| scale {fd.abs().max().item():.3f}")
        # parameter gradient (loss.backward through the divergence) against a directional FD
        params = list(net.parameters())
        gen = torch.Generator().manual_seed(11)
        vs = [torch.randn(p.shape, generator=gen, dtype=dt) for p in params]
        net.zero_grad(set_to_none=True)
        loss_fn(net, kind, "data", "loop", b, {}).backward()
        an = sum(((p.grad if p.grad is not None else torch.zeros_like(p)) * v).sum()
                 for p, v in zip(params, vs)).item()

        def shifted(t):
            with torch.no_grad():
                for p, v in zip(params, vs):
                    p.add_(t * v)
            val = loss_fn(net, kind, "data", "loop", b, {}).item()
            with torch.no_grad():
                for p, v in zip(params, vs):
                    p.sub_(t * v)
            return val
        fdg = (shifted(eps) - shifted(-eps)) / (2 * eps)
        rel = abs(an - fdg) / max(abs(fdg), 1e-300)
        good = rel < 1e-6
        ok &= good
        print(f"  {kind:6s} dloss/dparams . v: autograd {an:+.10f}  FD {fdg:+.10f}  "
              f"rel err {rel:.1e} {'ok' if good else 'FAIL'}")
    print("CHECK", "PASSED" if ok else "FAILED")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--sizes", default="2x2,5x10,10x10", help="comma list of d x k")
    ap.add_argument("--models", default="vector,energy")
    ap.add_argument("--method", default="auto", choices=["auto"] + METHODS)
    ap.add_argument("--coords", default="auto", choices=["auto"] + COORDS)
    ap.add_argument("--compare", action="store_true", help="time every coords x method")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--flops", action="store_true", help="profiler-counted matmul flops/step")
    ap.add_argument("--blas", default=None, help="libblas.so.3 to preload (see docstring)")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    if args.check:
        return run_check(args)
    run_bench(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
