#!/usr/bin/python3
"""bench/quality/run.py refuses bad command lines before running anything: exit code 2 and a
message that names the input and says what to give instead. Each case runs the real driver in a
subprocess against the real sbibm data folder; no fsbi run is started (the workdir stays empty).

    quality_driver_errors.py RUN_PY FSBI SBIBM WORKDIR
"""
import shutil
import subprocess
import sys
from pathlib import Path

run_py, fsbi, sbibm, workdir = sys.argv[1:5]
work = Path(workdir)
shutil.rmtree(work, ignore_errors=True)
work.mkdir(parents=True)
a_file = work / "a_file"
a_file.write_text("not a folder\n")

base = ["--fsbi", fsbi, "--sbibm", sbibm, "--workdir", str(work / "runs"), "--budgets", "1000",
        "--observations", "1"]
cases = [
    (["--tasks", "no_such_task"], "--tasks: no task 'no_such_task' in"),
    (["--tasks", "no_such_task"], "the tasks there: bernoulli_glm, gaussian_linear,"),
    (["--tasks", "two_moons", "--observations", "11"], "two_moons has no observation 11 in"),
    (["--tasks", "two_moons", "--observations", "11"], "(it has 1–10)"),
    (["--tasks", "two_moons", "--sbibm", str(work / "nowhere")], "no such folder (give sbibm's data folder"),
    (["--tasks", "two_moons", "--budgets=-5"], "--budgets -5: each budget must be at least 20"),
    (["--tasks", "two_moons", "--budgets", "1000,10"], "each budget must be at least 20"),
    (["--tasks", "two_moons", "--budgets", "1e3x"], "bad budget '1e3x'"),
    (["--tasks", "two_moons", "--threads", "-1"], "--threads -1: give 0 (all cores) or a positive number"),
    (["--tasks", "two_moons", "--workdir", str(a_file / "runs")], f"{a_file} is a file, not a folder"),
    (["--tasks", "two_moons", "--output", str(a_file / "t.md")], f"{a_file} is a file, not a folder"),
    (["--tasks", "two_moons", "--output", str(work)], "is a folder; give a file name"),
    (["--tasks", "two_moons", "--score-error", str(work / "no_score_error")], "not found or not executable"),
    (["--tasks", "two_moons", "--fsbi", str(work / "no_fsbi")], "not found or not executable (build fsbi"),
]
failed = 0
for extra, expected in cases:
    r = subprocess.run(["/usr/bin/python3", run_py] + base + extra, capture_output=True, text=True, timeout=120)
    ok = r.returncode == 2 and expected in r.stderr and "Traceback" not in r.stderr
    print(f"{'ok  ' if ok else 'FAIL'} {' '.join(extra)} -> exit {r.returncode}: {r.stderr.strip().splitlines()[-1:]}")
    if not ok:
        print(f"     expected exit 2 and '{expected}' in stderr; stderr was:\n{r.stderr}")
        failed += 1
if (work / "runs").exists() and any((work / "runs").iterdir()):
    print(f"FAIL: a refused command line left files in {work / 'runs'}")
    failed += 1
print(f"{len(cases) - failed}/{len(cases)} refused as expected" if not failed else f"{failed} case(s) failed")
sys.exit(1 if failed else 0)
