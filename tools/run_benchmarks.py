"""Run every benchmark in benchmarks/ and collect their JSON into benchmarks/results.json."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Programs a benchmark needs besides the venv; without them it is recorded as skipped.
NEEDS = {"web": ("wrk",)}  # web.py loads the site with wrk (apt-get install wrk)


def main() -> int:
    """Run each ``benchmarks/*.py`` script; a failing one is recorded, not hidden."""
    results: dict[str, object] = {"generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                time.gmtime())}
    status = 0
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        missing = [tool for tool in NEEDS.get(script.stem, ()) if shutil.which(tool) is None]
        if missing:
            results[script.stem] = {"skipped": f"needs {', '.join(missing)}"}
            continue
        print(f"running {script.name} ...", file=sys.stderr, flush=True)
        proc = subprocess.run([sys.executable, str(script), *sys.argv[1:]], cwd=ROOT,
                              capture_output=True, text=True)
        if proc.returncode != 0 and proc.stdout.lstrip().startswith("{"):
            status = 1  # it ran and printed its figures, but missed a target
            results[script.stem] = {**json.loads(proc.stdout), "exit_status": proc.returncode}
            continue
        if proc.returncode != 0:
            status = 1
            results[script.stem] = {"error": proc.stderr.strip().splitlines()[-1:] or
                                    [f"exit {proc.returncode}"]}
            continue
        results[script.stem] = json.loads(proc.stdout)
    out = ROOT / "benchmarks" / "results.json"
    out.write_text(json.dumps(results, indent=2) + "\n", "utf-8")
    print(json.dumps(results, indent=2))
    return status


if __name__ == "__main__":
    sys.exit(main())
