#!/usr/bin/python3
"""sbibm quality benchmark: fsbi's default pipeline against sbibm's reference posteriors.

For every chosen task, simulation budget and sbibm observation this runs

    fsbi run -s TASK --observation <sbibm>/TASK/obs_N/observation.csv -n BUDGET -o RUN.h5 \
             --num-samples 10000 --seed SEED --threads T [--extra-run-args ...]

with fsbi's default settings (for the second and later observation of a task and budget, by default,
`fsbi sample --model` of the first one's run file instead: see "Shared training" below), takes the
posterior samples from RUN.h5 (/posterior/theta, dims
(chain, draw, parameter)), computes C2ST against the reference samples exactly as sbibm does
(tests/support/c2st.py, run in a subprocess with one BLAS/OpenMP thread per worker), and writes a
markdown table: mean C2ST ± sd over the observations next to sbibm's published NPE/NLE/NRE means
(sbibm_c2st.csv; SNPE/SNLE/SNRE when --label contains "sequential"), where sbibm's true
parameters lie in the posterior (mean |z| and the share inside the central 90 %; every task,
also those without reference samples), how far the learned Fisher score is from the simulator's
analytic one where the simulator provides it (below), mean wall seconds per fsbi stage and per
run, the C2ST time, and failures. Run with Debian's /usr/bin/python3 (numpy, h5py,
scikit-learn). See bench/quality/README.md.

Stage times come from fsbi's progress output: it prints a line containing "[1/3]" when it starts
simulating, "[2/3]" when it starts training and "[3/3]" when it starts sampling (a sequential run
prints them once per round: "round 2/3 [1/3] ..."). The wall time from each such line to the next
one (or to the process's exit) is attributed to that stage and repeated stages are summed; time
before the first marker (loading the plugin, reading the observation) counts only in the run's
total. fsbi writes these markers with printf to stdout, which is block-buffered when stdout is a
pipe, so fsbi is started under `stdbuf -oL` to make them arrive when they are printed.

Reference posterior samples:
  * `<sbibm>/TASK/obs_N/reference_posterior_samples.csv` (10 000 samples, from the sbibm
    benchmark; provided for gaussian_linear, gaussian_linear_uniform, two_moons and slcp).
  * gaussian_mixture (no reference file): generated here, exactly, the way sbibm's own
    GaussianMixture._sample_reference_posterior does (sbibm/tasks/gaussian_mixture/task.py; task
    definition in <sbibm>/TASKS.md): prior U(-10, 10)^2 and x | θ ~ 0.5 N(θ, I) + 0.5 N(θ, 0.01 I),
    so p(θ | x_o) ∝ [0.5 N(θ; x_o, I) + 0.5 N(θ; x_o, 0.01 I)] · 1{θ ∈ [-10, 10]^2}. Each sample
    picks a component with probability 1/2, draws θ from it and is kept if θ lies in the box —
    exact rejection sampling from the truncated mixture (the truncation re-weights the components
    by their mass inside the box, which rejection does by itself). 10 000 samples, numpy PCG64
    seeded with 1 000 000 + N; x_o is read as float32 as sbibm does. Cached in
    <workdir>/references/.
  * Any other task: no C2ST ("—"); everything else still runs.

Score error: for simulators that export their analytic likelihood score (every bundled sbibm
task), each run's model is checked with build/bench/score_error
before its run file is deleted — the relative MSE E‖ŝ − s‖²/E‖s‖² on 3000 fresh pairs from the
prior (seed 12345), and at the run's own posterior samples with x = x_o, where the posterior was
drawn. The second can be large while C2ST is not available: it shows a posterior built on a wrong
score (sbibm's sir at 10⁴, bench/README.md).

Shared training: simulation and training do not depend on the observation, and one seed drives
every stage of `fsbi run`, so for a single observation `fsbi sample --model FIRST_RUN.h5
--observation OBS --seed SEED` draws exactly the samples of `fsbi run --observation OBS --seed SEED`
(tests/cli/test_cli_sample.cpp, CliSample.SamplingARunFileRepeatsTheRunForAnotherObservation).
So without --extra-run-args the first observation of each task and budget runs `fsbi run` and its
run file is kept as WORKDIR/TASK_nBUDGET_model_DIGEST.h5; the other observations run `fsbi sample`
on it: ten observations at 10⁵ simulations train once, not ten times. --no-shared-training runs
`fsbi run` for every observation; with --extra-run-args it always does (those may change the
training or be options `fsbi sample` does not take, such as --rounds), and so does an
observation file with several rows (fsbi then recentres the score with simulations at draws of
that observation's posterior). The table's simulate and
train columns are means over the runs that trained, its run column the mean of whole `fsbi run`s.

Resuming: every finished run is recorded as one JSON line in <workdir>/results.jsonl, keyed by
its identity (task, budget, observation, num-samples, seed, extra run args). A rerun with the same
settings skips recorded runs (failed ones too, unless --retry-failed), reuses an extracted
samples CSV or a finished run file whose C2ST was interrupted, and runs the rest. The fsbi binary
is not part of the identity: after changing fsbi, use a new --workdir or --fresh.

Exit status: 0; 1 if a run failed or a mean C2ST exceeds --max-c2st; 2 on usage errors.
"""
import argparse
import csv
import datetime
import hashlib
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parents[2]
C2ST_SCRIPT = REPO / "tests" / "support" / "c2st.py"
DEFAULT_TASKS = "gaussian_linear,gaussian_linear_uniform,two_moons,slcp"
STAGES = ("simulate", "train", "sample")
CHECK_P = re.compile(r"smallest p = ([0-9.eE+-]+)")
STAGE_MARK = re.compile(r"\[([123])/3\]")
LOG_TAIL = 15
MIN_BUDGET = 20  # fsbi run's smallest budget (the trainer's minimum)


# ---------------------------------------------------------------------------------------------
# Command line

def parse_int_list(text, what):
    """'1000,10000' or '1-10' or '1,3,5-7' -> sorted unique ints."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
        try:
            if m:
                lo, hi = int(m.group(1)), int(m.group(2))
                if lo > hi:
                    raise ValueError
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(float(part)) if re.fullmatch(r"\d+(\.\d*)?[eE]\d+", part) else int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad {what} '{part}' in '{text}': give whole numbers and ranges, "
                                             "e.g. 1000,1e4 or 1-3,7")
    if not out:
        raise argparse.ArgumentTypeError(f"no {what} in '{text}'")
    return sorted(set(out))


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except None (those options' help says what happens without them)."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def available_tasks(sbibm):
    return sorted(d.name for d in sbibm.iterdir() if (d / "obs_1" / "observation.csv").is_file())


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Run fsbi's default pipeline on sbibm tasks and report C2ST and stage times.",
        formatter_class=HelpFormatter)
    p.add_argument("--fsbi", default=str(REPO / "build" / "bin" / "fsbi"), help="fsbi binary")
    p.add_argument("--sbibm", default=str(REPO.parent / "shared" / "sbibm"), help="sbibm data directory")
    p.add_argument("--tasks", default=DEFAULT_TASKS, help="comma-separated sbibm tasks")
    p.add_argument("--budgets", default="1000,10000", help="simulation budgets, e.g. 1000,10000 or 1e3,1e4")
    p.add_argument("--observations", default="1-10", help="sbibm observations, e.g. 1-10 or 1,3,5-7")
    p.add_argument("--num-samples", type=int, default=10000, help="posterior samples per run (C2ST uses all)")
    p.add_argument("--seed", type=int, default=1, help="fsbi run --seed")
    p.add_argument("--threads", type=int, default=0, help="fsbi run --threads (0: all cores)")
    p.add_argument("--workdir", default=str(REPO / "bench" / "quality" / "runs"),
                   help="run files, logs, samples and results.jsonl")
    p.add_argument("--output", default=None, help="markdown table (default: WORKDIR/table.md)")
    p.add_argument("--extra-run-args", default="", help="extra arguments for fsbi run, e.g. '--rounds 3' "
                   "(part of a run's identity)")
    p.add_argument("--label", default="default", help="mode label for the table, e.g. amortised or sequential "
                   "(with 'sequential' the sbibm columns are SNPE/SNLE/SNRE)")
    p.add_argument("--max-c2st", type=float, default=None, help="exit 1 if a mean C2ST exceeds this")
    p.add_argument("--keep-files", action="store_true", help="keep each run's .h5 (otherwise deleted once "
                   "its samples are extracted)")
    p.add_argument("--no-shared-training", action="store_true",
                   help="run `fsbi run` for every observation (by default, without --extra-run-args, the first "
                   "observation of a task and budget trains and the others `fsbi sample` its model, which "
                   "gives the same samples)")
    p.add_argument("--retry-failed", action="store_true", help="run again runs recorded as failed")
    p.add_argument("--fresh", action="store_true", help="forget recorded results and files of the planned runs")
    p.add_argument("--blas", default=None, metavar="DIR",
                   help="directory with a libblas.so.3 for the C2ST classifier, e.g. an unpacked OpenBLAS "
                   "(Debian's default netlib BLAS makes a 10-parameter C2ST take ~6 minutes; see README)")
    p.add_argument("--score-error", default=None, metavar="PATH",
                   help="bench/score_error binary (default: beside --fsbi, ../bench/score_error); the score "
                   "columns are left empty when it is missing")
    p.add_argument("-v", "--verbose", action="store_true", help="echo fsbi's output")
    a = p.parse_args(argv)
    if a.blas is not None and not (Path(a.blas) / "libblas.so.3").is_file():
        p.error(f"--blas {a.blas}: no libblas.so.3 in that directory (give the folder that holds it, e.g. "
                "root/usr/lib/x86_64-linux-gnu/openblas-pthread of an unpacked libopenblas0-pthread)")
    try:
        a.task_list = list(dict.fromkeys(t.strip() for t in a.tasks.split(",") if t.strip()))
        a.budget_list = parse_int_list(a.budgets, "budget")
        a.obs_list = parse_int_list(a.observations, "observation")
    except argparse.ArgumentTypeError as e:
        p.error(str(e))
    if not a.task_list:
        p.error("no tasks")
    if a.num_samples < 1:
        p.error("--num-samples must be positive")
    if a.budget_list[0] < MIN_BUDGET:
        p.error(f"--budgets {a.budgets}: each budget must be at least {MIN_BUDGET} (fsbi run trains on them)")
    if a.threads < 0:
        p.error(f"--threads {a.threads}: give 0 (all cores) or a positive number")
    a.extra = shlex.split(a.extra_run_args)
    a.share_training = not a.no_shared_training and not a.extra
    a.fsbi = str(Path(a.fsbi).resolve())
    if not os.access(a.fsbi, os.X_OK):
        p.error(f"--fsbi {a.fsbi}: not found or not executable (build fsbi: scripts/build.sh build)")
    if a.score_error:
        a.score_error = Path(a.score_error).resolve()
        if not os.access(a.score_error, os.X_OK):
            p.error(f"--score-error {a.score_error}: not found or not executable (build the score_error target, "
                    "or leave the option out)")
    else:
        a.score_error = Path(a.fsbi).parents[1] / "bench" / "score_error"
        if not os.access(a.score_error, os.X_OK):
            print(f"note: {a.score_error} not found: no score-error columns (build the score_error target or give "
                  "--score-error)", file=sys.stderr)
            a.score_error = None
    a.sbibm = Path(a.sbibm).resolve()
    a.workdir = Path(a.workdir).resolve()
    a.output = Path(a.output).resolve() if a.output else a.workdir / "table.md"
    for what, d in (("--workdir", a.workdir), ("--output's folder", a.output.parent)):
        existing = next((q for q in [d, *d.parents] if q.exists()), None)
        if existing is not None and not existing.is_dir():
            p.error(f"{what} {d}: {existing} is a file, not a folder; choose another path")
    if a.output.is_dir():
        p.error(f"--output {a.output}: is a folder; give a file name, e.g. {a.output / 'table.md'}")
    if not C2ST_SCRIPT.is_file():
        p.error(f"C2ST script not found: {C2ST_SCRIPT}")
    if not a.sbibm.is_dir():
        p.error(f"--sbibm {a.sbibm}: no such folder (give sbibm's data folder, which holds TASK/obs_N/)")
    tasks = available_tasks(a.sbibm)
    for t in a.task_list:
        if t not in tasks:
            p.error(f"--tasks: no task '{t}' in {a.sbibm}; the tasks there: {', '.join(tasks)}")
        missing = [n for n in a.obs_list if not (a.sbibm / t / f"obs_{n}" / "observation.csv").is_file()]
        if missing:
            have = sorted(int(d.name[4:]) for d in (a.sbibm / t).glob("obs_*") if d.name[4:].isdigit()
                          and (d / "observation.csv").is_file())
            p.error(f"--observations: {t} has no observation {', '.join(map(str, missing))} in {a.sbibm / t} "
                    f"(it has {have[0]}–{have[-1]})" if have else f"--observations: {t} has no observations")
    return a


# ---------------------------------------------------------------------------------------------
# Small helpers

def now_utc():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def write_atomic(path, text):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_samples_csv(path, samples):
    tmp = path.with_name(path.name + ".tmp")
    header = ",".join(f"parameter_{i + 1}" for i in range(samples.shape[1]))
    np.savetxt(tmp, samples, delimiter=",", fmt="%.9g", header=header, comments="")
    os.replace(tmp, path)


def read_csv_matrix(path):
    return np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)


def machine_description():
    try:
        ncpu = len(os.sched_getaffinity(0))
    except AttributeError:
        ncpu = os.cpu_count()
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    return ncpu, model, load


def child_setup():
    """In the child before exec: its own process group (stop() ends it with its workers), and killed when
    this driver dies, even by SIGKILL (Linux PR_SET_PDEATHSIG)."""
    os.setsid()
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def stop(p):
    """Ends a child started with child_setup, and the processes it started (loky workers)."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    p.wait()


def fsbi_version(fsbi):
    try:
        r = subprocess.run([fsbi, "--version"], capture_output=True, text=True, timeout=30)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown version"


# ---------------------------------------------------------------------------------------------
# Runs: identity, files, results file

def digest(settings):
    """Short stable hash of a dict of settings, for file names."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]


class Run:
    def __init__(self, args, task, budget, obs):
        self.task, self.budget, self.obs = task, budget, obs
        self.identity = {"task": task, "budget": budget, "observation": obs, "num_samples": args.num_samples,
                         "seed": args.seed, "extra_run_args": args.extra}
        self.key = f"{task}_n{budget}_obs{obs}_{digest(self.identity)}"
        stem = args.workdir / self.key
        self.h5 = stem.with_name(self.key + ".h5")
        self.log = stem.with_name(self.key + ".log")
        self.timing = stem.with_name(self.key + ".fsbi.json")
        self.samples = stem.with_name(self.key + ".samples.csv")
        self.observation = args.sbibm / task / f"obs_{obs}" / "observation.csv"
        # The run file whose model the other observations of this task and budget sample from
        # (shared training): keyed by everything that makes the model, not by the observation.
        training = {"task": task, "budget": budget, "seed": args.seed, "extra_run_args": args.extra}
        self.shared_model = args.workdir / f"{task}_n{budget}_model_{digest(training)}.h5"

    def all_files(self):
        # fsbi's stage files beside the output: KEY.h5.simulations.h5, KEY.h5.model.h5(.checkpoint),
        # KEY.h5.partial, per-round files of sequential runs, ...
        stage_files = sorted(self.h5.parent.glob(glob_escape(self.h5.name) + ".*"))
        return [self.h5, self.log, self.timing, self.samples] + stage_files


def glob_escape(name):
    return re.sub(r"([*?\[])", r"[\1]", name)


def load_results(path):
    """key -> last record (later lines win)."""
    records = {}
    if path.is_file():
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
                records[r["key"]] = r
            except (json.JSONDecodeError, KeyError):
                print(f"warning: {path}:{n}: unreadable line ignored", file=sys.stderr)
    return records


def append_result(path, record):
    with open(path, "a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


# ---------------------------------------------------------------------------------------------
# fsbi

def run_fsbi(args, run, model=None):
    """Runs `fsbi run` (or, given the run file of another observation as `model`, `fsbi sample` on its
    model), streaming its output to run.log; returns (exit code, stage seconds, wall, tail)."""
    common = ["--observation", str(run.observation), "-o", str(run.h5), "--num-samples", str(args.num_samples),
              "--seed", str(args.seed), "--threads", str(args.threads)]
    if model is None:
        cmd = [args.fsbi, "run", "-s", run.task, "-n", str(run.budget)] + common + args.extra
    else:
        cmd = [args.fsbi, "sample", "--model", str(model)] + common
    if args.stdbuf:
        cmd = [args.stdbuf, "-oL", "-eL"] + cmd
    stages = {s: 0.0 for s in STAGES}
    seen = set()
    tail = []
    current, since = None, None
    with open(run.log, "w") as log:
        log.write(f"# {shlex.join(cmd)}\n# started {now_utc()}\n")
        log.flush()
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             bufsize=0, preexec_fn=child_setup)
        try:
            for raw in iter(p.stdout.readline, b""):
                t = time.monotonic()
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                log.write(f"[{t - t0:8.2f}s] {line}\n")
                log.flush()
                if args.verbose:
                    print(f"      | {line}", flush=True)
                tail = (tail + [line])[-LOG_TAIL:]
                m = STAGE_MARK.search(line)
                if m:
                    if current is not None:
                        stages[current] += t - since
                    current, since = STAGES[int(m.group(1)) - 1], t
                    seen.add(current)
            code = p.wait()
        except BaseException:
            stop(p)
            raise
        t = time.monotonic()
        if current is not None:
            stages[current] += t - since
        if model is not None:  # `fsbi sample` prints no stage lines: all of it is sampling
            stages["sample"], seen = t - t0, {"sample"}
        log.write(f"# exit code {code} after {t - t0:.2f} s\n")
    return code, {s: (stages[s] if s in seen else None) for s in STAGES}, t - t0, tail


def extract_samples(args, run):
    import h5py
    with h5py.File(run.h5, "r") as f:
        if "posterior" not in f or "theta" not in f["posterior"]:
            raise RuntimeError(f"{run.h5.name}: no /posterior/theta")
        ds = f["posterior"]["theta"]
        if ds.ndim != 3:
            raise RuntimeError(f"{run.h5.name}: /posterior/theta has shape {ds.shape}, expected (chain, draw, parameter)")
        theta = ds[...]
    # (chain, draw, parameter) -> draw-major rows, so that the first num-samples rows span all
    # chains if the file holds more than asked for.
    samples = np.ascontiguousarray(theta.transpose(1, 0, 2)).reshape(-1, theta.shape[2])
    # fsbi drops chains that left the region the model was trained on (and says so in its log);
    # a few missing chains still give a fair C2ST (sbibm's classifier takes unequal sets), many
    # mean the run failed.
    if samples.shape[0] < 0.9 * args.num_samples:
        raise RuntimeError(f"{run.h5.name}: {samples.shape[0]} posterior samples, fewer than 90% of "
                           f"--num-samples {args.num_samples}")
    if samples.shape[0] < args.num_samples:
        print(f"    note: {run.h5.name}: {samples.shape[0]} posterior samples (chains that escaped the training "
              f"region were dropped)", flush=True)
    samples = samples[:args.num_samples]
    if not np.all(np.isfinite(samples)):
        raise RuntimeError(f"{run.h5.name}: non-finite posterior samples")
    return samples


def run_file_is_finished(args, run):
    try:
        extract_samples(args, run)
        return True
    except Exception:
        return False


# ---------------------------------------------------------------------------------------------
# References and C2ST

def gaussian_mixture_reference(x_o, num_samples, seed, bound=10.0):
    """Exact samples of p(θ | x_o) for sbibm's gaussian_mixture (see the module docstring)."""
    x_o = np.asarray(x_o, dtype=np.float64).reshape(-1)
    rng = np.random.default_rng(seed)
    kept, have = [], 0
    while have < num_samples:
        m = 2 * (num_samples - have) + 1000
        scale = np.where(rng.random(m) < 0.5, 1.0, 0.1)[:, None]
        theta = x_o + scale * rng.standard_normal((m, x_o.size))
        theta = theta[np.all((theta >= -bound) & (theta <= bound), axis=1)]
        kept.append(theta)
        have += len(theta)
    return np.concatenate(kept)[:num_samples]


def reference_for(args, task, obs):
    """(path of the reference CSV or None, description)."""
    given = args.sbibm / task / f"obs_{obs}" / "reference_posterior_samples.csv"
    if given.is_file():
        return given, "sbibm reference_posterior_samples.csv"
    if task == "gaussian_mixture":
        path = args.workdir / "references" / f"gaussian_mixture_obs{obs}_reference.csv"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            x_o = np.loadtxt(args.sbibm / task / f"obs_{obs}" / "observation.csv", delimiter=",", skiprows=1,
                             ndmin=2).astype(np.float32)[0]
            write_samples_csv(path, gaussian_mixture_reference(x_o, 10000, 1_000_000 + obs))
        return path, "analytic (truncated Gaussian mixture, exact rejection sampling)"
    return None, "none"


def c2st_env(args):
    """Environment of the C2ST subprocess: one BLAS/OpenMP thread per fold worker; --blas first on the
    library path."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if args.blas:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(Path(args.blas).resolve()),
                                                             env.get("LD_LIBRARY_PATH")) if p)
    return env


def c2st_blas(args):
    """The BLAS library numpy loads in the C2ST subprocess's environment (a path, or '?')."""
    probe = ("import numpy, os\n"
             "libs = sorted({os.path.realpath(l.split()[-1]) for l in open('/proc/self/maps')\n"
             "               if 'blas' in l.split()[-1] and l.split()[-1].startswith('/')})\n"
             "print(', '.join(libs) or '?')")
    try:
        out = subprocess.run([sys.executable, "-c", probe], env=c2st_env(args), capture_output=True, text=True,
                             timeout=60, stdin=subprocess.DEVNULL)
        return out.stdout.strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


SCORE_MSE = re.compile(r"relative MSE .*= *([0-9.eE+-]+|nan|inf)")
# score_error's per-pair line: "per-pair |s_hat - s| / |s|: quartiles Q1 MEDIAN Q3"
SCORE_QUARTILES = re.compile(r"per-pair .*quartiles +(\S+) +(\S+) +(\S+)")


def score_check(args, run):
    """Relative MSE of the run's learned score against the simulator's analytic likelihood score: on
    fresh prior pairs and at the run's posterior samples with x = x_o. Returns a dict, or None when
    the simulator has no analytic score (or score_error is not available)."""
    if args.score_error is None:
        return None
    cmd = [str(args.score_error), "-m", str(run.h5), "--pairs", "3000", "--theta", str(run.samples),
           "--observation", str(run.observation)]
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, preexec_fn=child_setup)
    if r.returncode != 0:
        if "no analytic likelihood score" in r.stderr:
            return None
        raise RuntimeError(f"score_error exited with {r.returncode}: {(r.stderr or r.stdout).strip()[-1000:]}")
    values = [float(v) for v in SCORE_MSE.findall(r.stdout)]
    medians = [float(q[1]) for q in SCORE_QUARTILES.findall(r.stdout)]
    if len(values) != 2 or len(medians) != 2:
        raise RuntimeError(f"score_error printed {len(values)} relative MSE and {len(medians)} per-pair quartile "
                           f"lines, expected 2 of each:\n{r.stdout[-1000:]}")
    return {"prior": values[0], "posterior": values[1], "prior_median": medians[0], "posterior_median": medians[1],
            "seconds": time.monotonic() - t0}


def predictive_check(args, run):
    """`fsbi check` on the run file: the smallest posterior predictive p-value over the run's
    observations and whether fsbi flagged the posterior (exit code 4) as not reproducing them."""
    cmd = [str(args.fsbi), "check", str(run.h5), "--threads", str(args.threads)]
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, preexec_fn=child_setup)
    if r.returncode not in (0, 4):
        raise RuntimeError(f"fsbi check exited with {r.returncode}: {(r.stderr or r.stdout).strip()[-1000:]}")
    m = CHECK_P.search(r.stdout + r.stderr)
    if m is None:
        raise RuntimeError(f"fsbi check printed no p-value:\n{(r.stdout + r.stderr)[-1000:]}")
    return {"p": float(m.group(1)), "flagged": r.returncode == 4, "seconds": time.monotonic() - t0}


def truth_check(args, run):
    """Where sbibm's true parameters lie in this run's posterior: z = (mean − θ_true)/sd and the
    posterior quantile of θ_true, per parameter; None without samples or true parameters."""
    path = args.sbibm / run.task / f"obs_{run.obs}" / "true_parameters.csv"
    if not path.is_file() or not run.samples.is_file():
        return None
    truth = read_csv_matrix(path)[0]
    samples = read_csv_matrix(run.samples)
    if samples.shape[1] != truth.size:
        return None
    z = (samples.mean(0) - truth) / samples.std(0, ddof=1)
    return z, (samples < truth).mean(0)


def run_c2st(args, reference, samples):
    """C2ST via tests/support/c2st.py in a subprocess; returns (value, seconds)."""
    env = c2st_env(args)
    t0 = time.monotonic()
    p = subprocess.Popen([sys.executable, str(C2ST_SCRIPT), str(reference), str(samples)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env, stdin=subprocess.DEVNULL,
                         preexec_fn=child_setup)
    try:
        out, err = p.communicate()
    except BaseException:
        stop(p)
        raise
    dt = time.monotonic() - t0
    if p.returncode != 0:
        raise RuntimeError(f"c2st.py exited with {p.returncode}: {(err or out).strip()[-2000:]}")
    return float(out.strip().splitlines()[-1]), dt


# ---------------------------------------------------------------------------------------------
# One run, end to end

def do_run(args, run, index, total):
    head = f"[{index}/{total}] {run.task} n={run.budget} obs {run.obs}"
    record = dict(run.identity, key=run.key, label=args.label, threads=args.threads, fsbi=args.fsbi,
                  fsbi_version=args.fsbi_version, date=now_utc(), status="ok", failed_stage=None,
                  stages=None, wall=None, c2st=None, c2st_seconds=None, reference=None)
    timing = None
    if run.timing.is_file():
        timing = json.loads(run.timing.read_text())
    # 1. fsbi, unless its samples or a finished run file are already here.
    if run.samples.is_file():
        print(f"{head}: reusing {run.samples.name}", flush=True)
    else:
        if run.h5.exists() and run_file_is_finished(args, run):
            print(f"{head}: reusing {run.h5.name}", flush=True)
        else:
            for f in run.all_files():
                if f.exists() and f not in (run.log,):
                    f.unlink()
            # With several observation rows fsbi recentres the score from simulations that depend on
            # them, so only single observations share training.
            model = (run.shared_model if args.share_training and run.shared_model.is_file()
                     and read_csv_matrix(run.observation).shape[0] == 1 else None)
            print(f"{head}: " + (f"fsbi sample --model {model.name} ..." if model else "fsbi run ..."), flush=True)
            code, stages, wall, tail = run_fsbi(args, run, model)
            timing = {"exit_code": code, "stages": stages, "wall": wall, "date": record["date"],
                      "model_from": model.name if model else None}
            if code != 0:
                record.update(status="failed", failed_stage="fsbi", exit_code=code, log_tail=tail,
                              stages=stages, wall=wall, log=run.log.name)
                print(f"{head}: fsbi FAILED with exit code {code} after {wall:.1f} s; last lines:\n    " +
                      "\n    ".join(tail[-5:]), flush=True)
                if not args.keep_files:
                    for f in run.all_files():
                        if f.exists() and f != run.log:
                            f.unlink()
                return record
            write_atomic(run.timing, json.dumps(timing))
        try:
            samples = extract_samples(args, run)
        except Exception as e:  # noqa: BLE001 — any reader error is this run's failure
            record.update(status="failed", failed_stage="samples", error=str(e), log=run.log.name)
            print(f"{head}: reading samples FAILED: {e}", flush=True)
            return record
        write_samples_csv(run.samples, samples)
        timing = dict(timing or {}, samples=int(samples.shape[0]))
        write_atomic(run.timing, json.dumps(timing))
        try:
            score = score_check(args, run)
        except Exception as e:  # noqa: BLE001 — reported, the run's other results stand
            print(f"{head}: score check FAILED: {e}", flush=True)
            score = None
        if score is not None:
            timing = dict(timing or {}, score_error=score)
            write_atomic(run.timing, json.dumps(timing))
        try:
            timing = dict(timing or {}, check=predictive_check(args, run))
            write_atomic(run.timing, json.dumps(timing))
        except Exception as e:  # noqa: BLE001 — reported, the run's other results stand
            print(f"{head}: fsbi check FAILED: {e}", flush=True)
        if args.share_training and not (timing or {}).get("model_from") and not run.shared_model.is_file():
            # This run trained: its file (model and training pairs) serves the other observations.
            (shutil.copyfile if args.keep_files else os.replace)(run.h5, run.shared_model)
        elif not args.keep_files:
            run.h5.unlink()
    if timing:
        record.update(stages=timing.get("stages"), wall=timing.get("wall"), fsbi_date=timing.get("date"),
                      score_error=timing.get("score_error"), check=timing.get("check"),
                      model_from=timing.get("model_from"), samples=timing.get("samples"))
    times = ""
    if record["wall"] is not None:
        st = record["stages"] or {}
        what = f"fsbi sample (model of {record['model_from']})" if record.get("model_from") else "fsbi"
        times = (f"{what} {record['wall']:.1f} s (" + ", ".join(
            f"{s} {st[s]:.1f}" if st.get(s) is not None else f"{s} —" for s in STAGES) + ")")
    if record.get("score_error"):
        se = record["score_error"]
        times += f"; score rel. MSE {se['prior']:.3g} on prior pairs, {se['posterior']:.3g} at the posterior"
        if "prior_median" in se:
            times += f" (median per-pair error {se['prior_median']:.3g} and {se['posterior_median']:.3g})"
    if record.get("check"):
        times += (f"; fsbi check p = {record['check']['p']:.3g}"
                  + (" (FLAGGED: does not reproduce the observation)" if record["check"]["flagged"] else ""))
    truth = truth_check(args, run)
    if truth is not None:
        z, q = truth
        times += (f"; θ_true at |z| ≤ {np.abs(z).max():.2f}, posterior quantiles "
                  + " ".join(f"{v:.2f}" for v in q))
    # 2. C2ST.
    reference, source = reference_for(args, run.task, run.obs)
    record["reference"] = source
    if reference is None:
        print(f"{head}: {times}; no reference, no C2ST", flush=True)
        return record
    try:
        value, seconds = run_c2st(args, reference, run.samples)
    except Exception as e:  # noqa: BLE001
        record.update(status="failed", failed_stage="c2st", error=str(e))
        print(f"{head}: C2ST FAILED: {e}", flush=True)
        return record
    record.update(c2st=value, c2st_seconds=seconds)
    print(f"{head}: {times}; C2ST {value:.4f} ({seconds:.0f} s)", flush=True)
    return record


# ---------------------------------------------------------------------------------------------
# Table

def load_published(sbibm):
    table = {}
    path = sbibm / "sbibm_c2st.csv"
    if path.is_file():
        with open(path) as f:
            for row in csv.DictReader(f):
                try:
                    table[(row["task"], row["algorithm"], int(row["budget"]))] = float(row["c2st_mean"])
                except (KeyError, ValueError):
                    pass
    return table


def mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def fmt(v, digits=1):
    return "—" if v is None else f"{v:.{digits}f}"


def build_table(args, runs, records, reused, started):
    algorithms = ("SNPE", "SNLE", "SNRE") if "sequential" in args.label.lower() else ("NPE", "NLE", "NRE")
    published = load_published(args.sbibm)
    ncpu, model, load = machine_description()
    argv = [sys.executable, sys.argv[0]] + sys.argv[1:]
    ran = [records[r.key] for r in runs if r.key in records]
    # Runs recorded by an earlier invocation keep the --threads they ran with.
    threads = ", ".join(str(t) for t in sorted({rec.get("threads", args.threads) for rec in ran})) or str(args.threads)
    lines = [
        "# fsbi on sbibm: posterior quality (C2ST) and time",
        "",
        f"- command: `{shlex.join(argv)}`",
        f"- date: {started} (table written {now_utc()})",
        f"- machine: {ncpu} cores (nproc), {model}; load average at the end {load}",
        f"- fsbi: `{args.fsbi}` ({args.fsbi_version}); `fsbi run` with default settings, --num-samples "
        f"{args.num_samples}, --seed {args.seed}, --threads {threads}"
        + (f", extra: `{shlex.join(args.extra)}`" if args.extra else ""),
        f"- mode: {args.label}; observations {','.join(map(str, args.obs_list))}; sbibm data `{args.sbibm}`",
        f"- C2ST classifier's BLAS: `{args.c2st_blas}`",
        "- C2ST as sbibm computes it (tests/support/c2st.py: MLP classifier, 5-fold CV, "
        f"all of fsbi's samples, up to --num-samples {args.num_samples}, against the reference's); "
        "mean ± sd (ddof 1) over the observations; sbibm columns: published means at the same budget "
        "(sbibm_c2st.csv). Reference samples: sbibm's where given; gaussian_mixture: exact analytic "
        "(bench/quality/run.py); other tasks: none (—).",
        "- times: mean wall seconds per run of each fsbi stage (from its [1/3] [2/3] [3/3] lines), of the "
        "whole `fsbi run`, and of one C2ST (not an fsbi stage).",
        ("- training shared: the first observation of each task and budget ran `fsbi run`, the others "
         "`fsbi sample --model` of its run file, which draws the same samples as their own `fsbi run` "
         "would (same seed); simulate / train / run s are means over the runs that trained, sample s "
         "over all." if args.share_training else
         "- training not shared: every observation ran its own `fsbi run`."),
        "- θ_true: sbibm's true parameters of each observation against fsbi's posterior, for every task "
        "(also those without reference samples): mean over parameters and observations of "
        "|posterior mean − θ_true| / posterior sd (about 0.8 for a calibrated, near-Gaussian posterior; "
        "much larger means the posterior misses the truth), and the share of parameters whose θ_true "
        "lies in the central 90 % interval (about 90 % when calibrated).",
        "- score rel. MSE: E‖ŝ − s‖²/E‖s‖² of the learned Fisher score against the simulator's analytic "
        "likelihood score (build/bench/score_error), mean over the runs: on 3000 fresh prior pairs / at "
        "the run's own posterior samples with x = x_o; — where the simulator has none.",
        "- score median error: the median over the same pairs of the per-pair ‖ŝ − s‖/‖s‖, mean over the runs "
        "(not squared, and not carried by the few pairs with the largest scores, which can dominate the "
        "relative MSE at a run's posterior, e.g. two_moons' samples off the ring).",
        "- check flags: observations whose posterior `fsbi check` (posterior predictive check, "
        "docs/diagnostics.md) flags as not reproducing the observation, of those checked.",
    ]
    if reused:
        lines.append(f"- {reused} run(s) were recorded by an earlier invocation in the same workdir; "
                     "their times are from when they ran.")
    lines += ["",
              "| mode | task | budget | obs done | C2ST | " + " | ".join(f"sbibm {a}" for a in algorithms) +
              " | θ_true mean \\|z\\| | θ_true in 90 % | score rel. MSE prior / posterior | score median error prior / posterior | check flags | simulate s | train s | sample s "
              "| run s | C2ST s | failures |",
              "|---|---|---|---|---|" + "---|" * len(algorithms) + "---|---|---|---|---|---|---|---|---|---|---|"]
    failures = []
    exceeded = []
    run_of = {r.key: r for r in runs}
    for task in args.task_list:
        for budget in args.budget_list:
            recs = [records[r.key] for r in runs if r.task == task and r.budget == budget and r.key in records]
            ok = [r for r in recs if r["status"] == "ok"]
            bad = [r for r in recs if r["status"] != "ok"]
            failures += bad
            c2 = [r["c2st"] for r in ok if r.get("c2st") is not None]
            if c2:
                m = sum(c2) / len(c2)
                sd = math.sqrt(sum((v - m) ** 2 for v in c2) / (len(c2) - 1)) if len(c2) > 1 else None
                c2s = f"{m:.3f} ± {sd:.3f}" if sd is not None else f"{m:.3f}"
                if args.max_c2st is not None and m > args.max_c2st:
                    exceeded.append((task, budget, m))
            else:
                c2s = "—"
            pub = [published.get((task, a, budget)) for a in algorithms]
            checks = [truth_check(args, run_of[r["key"]]) for r in ok if r["key"] in run_of]
            checks = [c for c in checks if c is not None]
            if checks:
                z = np.concatenate([c[0] for c in checks])
                q = np.concatenate([c[1] for c in checks])
                truth_cells = [f"{np.abs(z).mean():.2f}", f"{100 * np.mean((q > 0.05) & (q < 0.95)):.0f} %"]
            else:
                truth_cells = ["—", "—"]
            scores = [r["score_error"] for r in ok if r.get("score_error")]
            score_cell = (f"{mean([v['prior'] for v in scores]):.3g} / {mean([v['posterior'] for v in scores]):.3g}"
                          if scores else "—")
            # Records written before the median was recorded have none.
            medians = [v for v in scores if "prior_median" in v]
            median_cell = (f"{mean([v['prior_median'] for v in medians]):.3g} / "
                           f"{mean([v['posterior_median'] for v in medians]):.3g}" if medians else "—")
            checked = [r["check"] for r in ok if r.get("check")]
            check_cell = f"{sum(c['flagged'] for c in checked)}/{len(checked)}" if checked else "—"
            stage_means = [mean([(r.get("stages") or {}).get(s) for r in ok]) for s in STAGES]
            row = [args.label, task, str(budget), f"{len(ok)}/{len(args.obs_list)}", c2s] + \
                  [fmt(v, 3) for v in pub] + truth_cells + [score_cell, median_cell, check_cell] + [fmt(v) for v in stage_means] + \
                  [fmt(mean([r.get("wall") for r in ok if not r.get("model_from")])),
                   fmt(mean([r.get("c2st_seconds") for r in ok])),
                   str(len(bad)) if bad else "0"]
            lines.append("| " + " | ".join(row) + " |")
    short = [rec for rec in ran
             if rec["status"] == "ok" and rec.get("samples") is not None and rec["samples"] < args.num_samples]
    if short:
        lines += ["", f"Runs with fewer than --num-samples {args.num_samples} posterior samples (fsbi dropped chains "
                  "that left the region the model was trained on; see each run's log): " +
                  "; ".join(f"{r['task']} n={r['budget']} obs {r['observation']}: {r['samples']}" for r in short)]
    if failures:
        lines += ["", "## Failures", ""]
        for r in failures:
            what = (f"fsbi exit code {r.get('exit_code')}" if r.get("failed_stage") == "fsbi"
                    else f"{r.get('failed_stage')}: {r.get('error', '')}")
            lines.append(f"- {r['task']} n={r['budget']} obs {r['observation']}: {what}"
                         + (f" (log: `{args.workdir / r['log']}`)" if r.get("log") else ""))
            if r.get("log_tail"):
                lines += ["", "  ```"] + [f"  {t}" for t in r["log_tail"][-8:]] + ["  ```", ""]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n", failures, exceeded


# ---------------------------------------------------------------------------------------------

def on_sigterm(signum, frame):
    raise KeyboardInterrupt


def main(argv):
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGHUP, on_sigterm)
    started = now_utc()
    args.workdir.mkdir(parents=True, exist_ok=True)
    args.stdbuf = shutil.which("stdbuf")
    if not args.stdbuf:
        print("warning: stdbuf not found; fsbi's stage lines may arrive late and the stage times be wrong",
              file=sys.stderr)
    args.fsbi_version = fsbi_version(args.fsbi)
    args.c2st_blas = c2st_blas(args)
    if "/blas/libblas.so" in args.c2st_blas:
        print(f"note: the C2ST classifier runs on the netlib reference BLAS ({args.c2st_blas}); a 10-parameter "
              "C2ST then takes minutes. An OpenBLAS makes it ~3x faster: apt-get install libopenblas0-pthread, "
              "or unpack one and pass --blas DIR (bench/quality/README.md)", file=sys.stderr)
    results_path = args.workdir / "results.jsonl"
    runs = [Run(args, t, b, n) for t in args.task_list for b in args.budget_list for n in args.obs_list]
    records = load_results(results_path)
    if args.fresh:
        keys = {r.key for r in runs}
        for r in runs:
            for f in r.all_files() + [r.shared_model]:
                if f.exists():
                    f.unlink()
        kept = [rec for k, rec in records.items() if k not in keys]
        write_atomic(results_path, "".join(json.dumps(rec, sort_keys=True) + "\n" for rec in kept))
        records = {rec["key"]: rec for rec in kept}
    todo = [r for r in runs if r.key not in records or (args.retry_failed and records[r.key]["status"] != "ok")]
    reused = len(runs) - len(todo)
    print(f"{len(runs)} run(s): {reused} already recorded in {results_path}, {len(todo)} to do", flush=True)
    try:
        for i, run in enumerate(todo, 1):
            record = do_run(args, run, i, len(todo))
            append_result(results_path, record)
            records[run.key] = record
    except KeyboardInterrupt:
        print("\ninterrupted; the runs recorded so far are kept, rerun the same command to continue",
              file=sys.stderr)
        return 130
    table, failures, exceeded = build_table(args, runs, records, reused, started)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(args.output, table)
    print()
    print(table, end="")
    print(f"\ntable written to {args.output}")
    status = 0
    if failures:
        print(f"{len(failures)} run(s) failed", file=sys.stderr)
        status = 1
    for task, budget, m in exceeded:
        print(f"{task} n={budget}: mean C2ST {m:.4f} exceeds --max-c2st {args.max_c2st}", file=sys.stderr)
        status = 1
    if args.max_c2st is not None:
        missing = [(r.task, r.budget, r.obs) for r in runs
                   if records.get(r.key, {}).get("status") == "ok" and records[r.key].get("c2st") is None
                   and reference_for(args, r.task, r.obs)[0] is not None]
        if missing:
            print(f"--max-c2st: no C2ST for {missing}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
