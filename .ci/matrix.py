"""The version matrix: the README's test command in fresh virtual environments of old and new versions.

    python3 .ci/matrix.py                  # floor + newest: the whole test suite in each
    python3 .ci/matrix.py floor            # one of them
    python3 .ci/matrix.py --imports 3.11 3.12   # also: install and import every course module

Environments (each a virtual environment under ``.venvs/<name>``, made again whenever
``requirements.txt``, ``pyproject.toml`` or the environment's definition changes):

* ``floor``: the oldest Python the course supports (``requires-python`` in ``pyproject.toml``)
  with every library of the course's section of ``requirements.txt`` at exactly its lower
  bound (``>=`` read as ``==``); the tools (pytest, jupyter...) at their newest.
* ``newest``: the newest Python of those supported that this machine has, and the newest
  release of everything the package index serves (a pip constraint file of this machine, as
  ``/etc/xdg/pip`` may hold, is not applied: it would cap torch).
* ``--imports X.Y ...``: that Python with whatever pip picks, only installed and imported; the
  environment is removed afterwards (each holds about 6 GB, mostly torch's CUDA libraries).

Before each install the free disk space is checked (``NEEDED_GB``): a full disk is reported as
such, not as a failed pip install halfway through.

Prints the versions, the pytest summary and the wall time of each environment, then a table;
exits 1 when any environment fails.  Python interpreters are found as ``pythonX.Y`` on ``PATH``
or in pyenv's versions folder.
"""

import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENVS = ROOT / ".venvs"
REQUIREMENTS = ROOT / "requirements.txt"
SUPPORTED_PYTHONS = ("3.10", "3.11", "3.12", "3.13")
COURSE_SECTION = "# The course needs these:"   # requirements.txt: from here ...
TOOLS_SECTION = "# Tools"                       # ... to here: the libraries pinned in the floor
REPORTED = ("torch", "torchvision", "numpy", "scipy", "scikit-learn", "matplotlib", "ipywidgets", "pytest")
TEST_COMMAND = ("-m", "pytest")                 # the README's test command, in the environment's Python
NEEDED_GB = 8                                   # one environment (about 6 GB) and the test run's files


def floor_constraints(requirements: Path = REQUIREMENTS) -> list[str]:
    """``name==version`` for every ``name>=version`` of the course's section of ``requirements.txt``."""
    pins, inside = [], False
    for raw in requirements.read_text().splitlines():
        if raw.startswith(COURSE_SECTION):
            inside = True
            continue
        if raw.startswith(TOOLS_SECTION):
            break
        line = raw.split("#", 1)[0].strip()
        if inside and line:
            match = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*>=\s*([0-9][0-9A-Za-z.]*)", line)
            if not match:
                raise SystemExit(f"requirements.txt: {raw!r} is not of the form 'name>=version'")
            pins.append(f"{match[1]}=={match[2]}")
    if not pins:
        raise SystemExit(f"requirements.txt: no lines between {COURSE_SECTION!r} and {TOOLS_SECTION!r}")
    return pins


def find_python(version: str) -> str | None:
    """Path of a ``python<version>`` interpreter, or None."""
    found = shutil.which(f"python{version}")
    if found and subprocess.run([found, "-c", "pass"], capture_output=True).returncode == 0:
        return found
    pyenv_root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    for candidate in sorted(glob.glob(f"{pyenv_root}/versions/{version}.*/bin/python{version}"), reverse=True):
        return candidate
    return None


def environments(args) -> list[dict]:
    """The environments to build, in order: name, python, constraints, whether to run the tests."""
    available = [v for v in SUPPORTED_PYTHONS if find_python(v)]
    if SUPPORTED_PYTHONS[0] not in available:
        raise SystemExit(f"no Python {SUPPORTED_PYTHONS[0]} found (the floor); install it (pyenv install 3.10)")
    envs = []
    if "floor" in args.envs:
        envs.append(dict(name="floor", python=SUPPORTED_PYTHONS[0], constraints=floor_constraints(), tests=True))
    if "newest" in args.envs:
        envs.append(dict(name="newest", python=available[-1], constraints=None, tests=True))
    for version in args.imports:
        envs.append(dict(name=f"py{version}", python=version, constraints=[], tests=False))
    return envs


def _run(cmd, log, env=None, cwd=ROOT) -> int:
    print("$", " ".join(map(str, cmd)), flush=True)
    with open(log, "a") as out:
        return subprocess.run(list(map(str, cmd)), cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT).returncode


def build(spec: dict, log: Path) -> Path:
    """Create (or reuse) the virtual environment of ``spec``; return its Python."""
    python = find_python(spec["python"])
    if python is None:
        raise RuntimeError(f"no Python {spec['python']} on this machine")
    venv = VENVS / spec["name"]
    key = hashlib.sha256(json.dumps([spec, REQUIREMENTS.read_text(), (ROOT / "pyproject.toml").read_text(),
                                     subprocess.check_output([python, "-V"], text=True)]).encode()).hexdigest()
    stamp = venv / ".matrix-stamp"
    venv_python = venv / "bin" / "python"
    if stamp.is_file() and stamp.read_text() == key and venv_python.exists():
        print(f"[{spec['name']}] reusing {venv.relative_to(ROOT)}", flush=True)
        return venv_python
    shutil.rmtree(venv, ignore_errors=True)
    check_disk(VENVS)
    env = dict(os.environ)
    if spec["constraints"] is None:
        env["PIP_CONSTRAINT"] = os.devnull    # no machine-wide cap: the newest releases served
    elif spec["constraints"]:
        VENVS.mkdir(exist_ok=True)
        constraints = VENVS / f"{spec['name']}-constraints.txt"
        constraints.write_text("\n".join(spec["constraints"]) + "\n")
        env["PIP_CONSTRAINT"] = str(constraints)
    if _run([python, "-m", "venv", venv], log):
        raise RuntimeError(f"could not create {venv}")
    if _run([venv_python, "-m", "pip", "install", "-q", "--upgrade", "pip"], log, env) or \
            _run([venv_python, "-m", "pip", "install", "-q", "-r", REQUIREMENTS], log, env):
        raise RuntimeError(f"pip install failed; see {log}")
    stamp.write_text(key)
    return venv_python


def check_disk(folder: Path, needed_gb: float = NEEDED_GB) -> None:
    """Raise ``RuntimeError`` when the disk holding ``folder`` has less than ``needed_gb`` GB free."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free / 1e9
    print(f"free disk space at {folder}: {free:.1f} GB", flush=True)
    if free < needed_gb:
        raise RuntimeError(f"only {free:.1f} GB free at {folder}; an environment needs about {needed_gb} GB. "
                           f"Free some space (old environments under {VENVS}, temporary files) and run again.")


def versions(python: Path, names=REPORTED) -> dict[str, str]:
    """The Python version and the versions of the distributions ``names`` in ``python``'s environment."""
    code = ("import importlib.metadata as m, json, platform; v = {'python': platform.python_version()}\n"
            f"for n in {tuple(names)!r}:\n"
            "    try: v[n] = m.version(n)\n"
            "    except m.PackageNotFoundError: v[n] = '-'\n"
            "print(json.dumps(v))")
    return json.loads(subprocess.check_output([python, "-c", code], text=True))


def import_everything(python: Path, log: Path) -> int:
    """Import every course module (``helpers`` and its subpackages, ``course``, ``A*/``, ``papers``) in
    ``python``'s environment."""
    code = ("import importlib, pathlib\n"
            "names = [p.with_suffix('').as_posix().replace('/', '.') for pat in ('helpers/**/*.py', 'course/*.py', "
            "'A*/*.py', 'papers/*.py') for p in sorted(pathlib.Path('.').glob(pat)) if p.stem != '__init__']\n"
            "for n in names: importlib.import_module(n)\n"
            "print(f'imported {len(names)} course modules')")
    return _run([python, "-W", "error::SyntaxWarning", "-c", code], log)


def summary_line(log: Path, raw: bool = False) -> str:
    """pytest's closing line (``N passed, M failed ... in S s``) from ``log``, or ''.

    ``raw``: as pytest printed it (between ``=`` signs), else without them.
    """
    lines = [ln for ln in log.read_text(errors="replace").splitlines()
             if re.search(r"\b(passed|failed|errors?|no tests ran)\b.* in [0-9.]+s", ln)]
    if not lines:
        return ""
    return lines[-1] if raw else lines[-1].strip(" =")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("envs", nargs="*", metavar="floor|newest", help="which test environments (default: both)")
    parser.add_argument("--imports", nargs="*", default=[], metavar="X.Y", choices=SUPPORTED_PYTHONS,
                        help="Pythons in which to install and import only")
    parser.add_argument("--pytest-args", default="", help="extra arguments for pytest (quoted)")
    args = parser.parse_args(argv)
    if set(args.envs) - {"floor", "newest"}:
        parser.error(f"unknown environment(s) {sorted(set(args.envs) - {'floor', 'newest'})}: floor or newest")
    args.envs = args.envs or ([] if args.imports else ["floor", "newest"])
    VENVS.mkdir(exist_ok=True)
    rows, ok = [], True
    for spec in environments(args):
        log = VENVS / f"{spec['name']}.log"
        log.write_text("")
        start = time.monotonic()
        print(f"\n[{spec['name']}] Python {spec['python']}" +
              (f", pinned: {' '.join(spec['constraints'])}" if spec["constraints"] else ""), flush=True)
        try:
            python = build(spec, log)
            installed = time.monotonic() - start
            pins = dict(pin.split("==") for pin in spec["constraints"] or [])
            found = versions(python, [*REPORTED, *(name for name in pins if name not in REPORTED)])
            print(f"[{spec['name']}] installed in {installed:.0f} s: {found}", flush=True)
            wrong = {name: (version, found[name]) for name, version in pins.items() if found[name] != version}
            if wrong:
                raise RuntimeError(f"installed versions differ from the pins (pinned, installed): {wrong}")
            if spec["tests"]:
                env = dict(os.environ, PATH=f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}")
                code = _run([python, *TEST_COMMAND, *args.pytest_args.split()], log, env)
                result = summary_line(log) or f"pytest exit code {code}, no summary line"
                # the failures' report when there are any, and pytest's own closing line always
                tail = log.read_text(errors="replace")[-6000:] if code else summary_line(log, raw=True)
                print(tail)
            else:
                code = import_everything(python, log)
                result = log.read_text().strip().splitlines()[-1] if log.read_text().strip() else ""
                shutil.rmtree(python.parent.parent, ignore_errors=True)
        except RuntimeError as error:
            code, found, result = 1, {}, str(error)
            print(log.read_text(errors="replace")[-3000:])
        elapsed = time.monotonic() - start
        ok &= code == 0
        rows.append((spec["name"], found, result, elapsed, "ok" if code == 0 else "FAILED"))
        print(f"[{spec['name']}] {rows[-1][4]}: {result} ({elapsed:.0f} s with the install)", flush=True)
    print("\n| environment | python | torch | torchvision | numpy | scipy | scikit-learn | matplotlib "
          "| ipywidgets | result | wall time |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, found, result, elapsed, verdict in rows:
        cells = [found.get(k, "?") for k in ("python", *REPORTED[:-1])]
        print(f"| {name} | {' | '.join(cells)} | {verdict}: {result} | {elapsed / 60:.1f} min |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
