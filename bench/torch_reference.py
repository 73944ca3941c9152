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

A formulation is coords:method. Each config times every formulation in --formulations
(rounds interleaved, so load changes hit all alike) and reports the fastest; --compare prints
them all. Methods (w = the differentiated input, h(w) = the row-wise map, see coords):
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
Coordinates:
  data  z, dz, d2z are given as data (as fsbi gets them); w = z, h = N (vector) or grad_z E
        (energy), and div = +-sum_j (d2z_j h_j + dz_j^2 dh_j/dz_j)  (+ vector, - energy)
  u     z and dz computed from u inside the graph; w = u, h = s_u, div = sum_j ds_j/du_j:
        autograd applies the chain rule through z.

Environment: OPENBLAS_NUM_THREADS=1 is forced before torch is imported (Debian's torch with a
threaded OpenBLAS otherwise oversubscribes the cores); torch.set_num_threads(--threads);
glibc malloc is tuned (see _tune_malloc; --malloc default to skip); --blas DIR picks the BLAS
(Debian's python3-torch runs on whatever libblas.so.3 the system alternative points to, which
is the slow netlib reference BLAS unless an OpenBLAS package is installed).

Usage:
  /usr/bin/python3 bench/torch_reference.py --check
  /usr/bin/python3 bench/torch_reference.py [--threads 2] [--formulations all] [--compare]
        [--seconds 3] [--repeats 3] [--batch 256] [--sizes 2x2,5x10,10x10] [--models vector,energy]
        [--flops] [--no-optimizer] [--blas DIR] [--malloc tuned|default]
"""

import argparse
import ctypes
import os
import sys
import time


def _argv_value(argv, name):
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


# must precede `import torch`; --openblas-threads only for experiments (see torch_reference.md)
os.environ["OPENBLAS_NUM_THREADS"] = _argv_value(sys.argv, "--openblas-threads") or "1"


def _preload_blas(argv):
    """--blas DIR: load DIR's libopenblas.so.0 (if any), libblas.so.3 and liblapack.so.3
    (RTLD_GLOBAL) before torch, so torch's libblas.so.3 / liblapack.so.3 dependencies resolve
    to them (same sonames) without touching the system's BLAS alternative. E.g. an OpenBLAS
    unpacked with `apt-get download libopenblas0-pthread && dpkg -x *.deb root`:
    --blas root/usr/lib/x86_64-linux-gnu/openblas-pthread"""
    path = _argv_value(argv, "--blas")
    if path:
        for name in ("libopenblas.so.0", "libblas.so.3", "liblapack.so.3"):
            f = os.path.join(path, name)
            if os.path.exists(f):
                ctypes.CDLL(f, mode=ctypes.RTLD_GLOBAL)


def _tune_malloc(argv):
    """Unless --malloc default: stop glibc malloc from returning the step's large temporaries
    (~0.1-10 MB each: batch x width x d) to the kernel after every step (mmap threshold / heap
    trimming), which otherwise costs a page fault per 4 KiB on every allocation and makes the
    d = 10 configurations up to ~4x slower. The same effect as running torch under jemalloc or
    tcmalloc (PyTorch's CPU tuning guide); done with mallopt so no preload is needed."""
    if _argv_value(argv, "--malloc") == "default":
        return "glibc default"
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return "glibc default (libc.so.6 not found)"
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
    ok = (libc.mallopt(M_MMAP_THRESHOLD, 1 << 30) and libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)
          and libc.mallopt(M_TOP_PAD, 64 << 20))
    return "tuned (mallopt: no mmap, no trim)" if ok else "glibc default (mallopt failed)"


_preload_blas(sys.argv)
MALLOC_MODE = _tune_malloc(sys.argv)

import torch  # noqa: E402
from torch import nn  # noqa: E402

try:
    import functorch  # noqa: E402
except ImportError:  # pragma: no cover
    functorch = None

SQRT3 = 3.0 ** 0.5
METHODS = ["loop", "batched_vjp", "jacobian", "vmap_jacrev", "vmap_jacfwd"]
COORDS = ["data", "u"]
# the fastest ones in a full --formulations all --compare sweep (bench/torch_reference.md)
DEFAULT_FORMULATIONS = "data:batched_vjp,data:loop,u:batched_vjp,data:vmap_jacrev"


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


OPTIMIZER_STEP = True  # --no-optimizer: objective + gradient only, as bench/training_step


def make_step(net, opt, kind, coords, method):
    eye_cache = {}

    def step(b):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net, kind, coords, method, b, eye_cache)
        loss.backward()
        if OPTIMIZER_STEP:
            opt.step()
        return loss
    return step


class Runner:
    """One formulation on one config: its own network, Adam, data; warmed up once."""

    def __init__(self, kind, d, k, coords, method, batch, warmup_s=0.5):
        torch.manual_seed(1)
        self.net = make_mlp(d, k, kind)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-4)
        self.step = make_step(self.net, self.opt, kind, coords, method)
        self.batches = make_batches(d, k, batch, 8, torch.float32)
        self.batch = batch
        self.n = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < warmup_s or self.n < 5:
            self._one()

    def _one(self):
        self.step(self.batches[self.n % len(self.batches)])
        self.n += 1

    def time(self, seconds):
        """(samples/s wall, samples per CPU-second) over >= seconds of whole steps."""
        n = 0
        c0 = time.process_time()
        t0 = time.perf_counter()
        while True:
            self._one()
            n += 1
            el = time.perf_counter() - t0
            if el >= seconds:
                break
        cpu = time.process_time() - c0
        return n * self.batch / el, n * self.batch / cpu


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


def parse_formulations(text):
    if text == "all":
        return [(c, m) for c in COORDS for m in METHODS]
    out = []
    for item in text.split(","):
        c, m = item.split(":")
        if c not in COORDS or m not in METHODS:
            raise SystemExit(f"bad formulation {item!r}: use coords:method with coords in "
                             f"{COORDS} and method in {METHODS}")
        out.append((c, m))
    return out


def run_bench(args):
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}  functorch {getattr(functorch, '__version__', 'n/a')}  "
          f"torch.get_num_threads()={torch.get_num_threads()}  "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}")
    blas = loaded_blas()
    print("BLAS loaded: " + (", ".join(blas) or "?"))
    if any("/blas/libblas.so" in b for b in blas):
        print("WARNING: this is the netlib REFERENCE BLAS (Debian's default libblas3): torch's "
              "matrix products are then several times slower than with OpenBLAS; see --blas")
    print("malloc: " + MALLOC_MODE + ";  step: forward + divergence + backward"
          + (" + Adam" if OPTIMIZER_STEP else " (no optimizer step)"))
    try:
        print("load average: %.2f %.2f %.2f" % os.getloadavg())
    except OSError:
        pass
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    forms = parse_formulations(args.formulations)
    print(f"batch {args.batch}; formulations {', '.join(c + ':' + m for c, m in forms)}; "
          f">= {args.seconds:g} s per timing, {args.repeats} rounds (formulations interleaved); "
          f"best round reported")
    head = (f"{'model':7s} {'d':>3s} {'k':>3s} {'formulation':17s} {'samples/s':>10s} "
            f"{'per CPU-s':>10s}" + ("  MFLOP/step GFLOP/s" if args.flops else "")
            + "   all rounds (samples/s)")
    summary = []
    for kind in args.models.split(","):
        for d, k in sizes:
            runners = [Runner(kind, d, k, c, m, args.batch) for c, m in forms]
            results = [[] for _ in forms]
            for _ in range(args.repeats):
                for i, r in enumerate(runners):
                    results[i].append(r.time(args.seconds))
            del runners
            rows = []
            for (c, m), res in zip(forms, results):
                wall, cpu = max(res)
                line = f"{kind:7s} {d:3d} {k:3d} {c + ':' + m:17s} {wall:10.0f} {cpu:10.0f}"
                if args.flops:
                    mf = count_flops(kind, d, k, c, m, args.batch) / 1e6
                    line += f"  {mf:10.1f} {mf * wall / args.batch / 1e3:7.1f}"
                line += "   " + ", ".join("%.0f" % w for w, _ in res)
                rows.append((wall, line))
            if args.compare:
                if not summary:
                    print("\n" + head)
                print("\n".join(line for _, line in rows) + "\n", flush=True)
            summary.append(max(rows)[1])
    print(f"\nBEST FORMULATION PER CONFIG (threads={torch.get_num_threads()}):\n{head}")
    print("\n".join(summary))
    try:
        print("load average at end: %.2f %.2f %.2f" % os.getloadavg())
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
    ap.add_argument("--formulations", default=DEFAULT_FORMULATIONS,
                    help="comma list of coords:method (coords: data|u; method: "
                    + "|".join(METHODS) + "), or 'all'")
    ap.add_argument("--compare", action="store_true",
                    help="print every formulation's row, not only the best per config")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--flops", action="store_true", help="profiler-counted matmul flops/step")
    ap.add_argument("--blas", default=None, metavar="DIR",
                    help="directory with a libblas.so.3 to use instead of the system's")
    ap.add_argument("--malloc", default="tuned", choices=["tuned", "default"],
                    help="glibc malloc: tuned (default; see _tune_malloc) or untouched")
    ap.add_argument("--no-optimizer", action="store_true",
                    help="time forward + divergence + backward only, no Adam step (what "
                    "bench/training_step times for fsbi)")
    ap.add_argument("--openblas-threads", default="1",
                    help="OPENBLAS_NUM_THREADS (default 1; other values only for experiments)")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    if args.check:
        return run_check(args)
    global OPTIMIZER_STEP
    OPTIMIZER_STEP = not args.no_optimizer
    run_bench(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
