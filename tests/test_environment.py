"""The course in environments we did not make: other devices, other packages, Colab's set-up cell.

* tensors made inside a function that is given a tensor are made on that tensor's device;
* no course module takes the name of a package a user is likely to have installed, and every
  course module imports beside such a package (HuggingFace's ``transformers``);
* the set-up cell every notebook opens with installs the course on Colab;
* the version floor of ``requirements.txt`` is what ``make matrix`` pins.
"""

import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import textwrap
import venv
import warnings
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT_DIRS = sorted(p for p in ROOT.glob("A*_*") if p.is_dir()) + [ROOT / "papers"]
COURSE_FILES = sorted(p for d in [*ASSIGNMENT_DIRS, ROOT / "helpers"] for p in d.glob("*.py"))
#: Every module of the course, sub-packages (helpers/datasets/) and the teacher's course/ included.
ALL_MODULES = sorted(p for d in [*ASSIGNMENT_DIRS, ROOT / "helpers", ROOT / "course"] for p in d.rglob("*.py"))
NOTEBOOKS = sorted(p for d in ASSIGNMENT_DIRS for p in d.glob("*.ipynb"))


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


# --- devices ---------------------------------------------------------------------------------

# torch functions that make a new tensor on the default device unless told otherwise
FACTORIES = {"zeros", "ones", "empty", "full", "arange", "linspace", "logspace", "eye", "rand", "randn",
             "randint", "randperm", "tensor", "as_tensor", "normal"}
# attributes that show a parameter is a tensor, so its device is at hand
TENSOR_ATTRIBUTES = {"shape", "device", "dtype", "dim", "numel", "size", "new_zeros", "new_ones", "new_full",
                     "new_empty", "new_tensor", "float", "long", "view", "reshape", "sum", "mean"}
PRAGMA = "# device:"   # on the call's line: why this tensor is made where it is


def _undeviced_factories(path: Path) -> list[str]:
    """``file:line`` of each ``torch.<factory>(...)`` without ``device=`` in a function given a tensor.

    A function is taken to be given a tensor when one of its parameters is used as one
    (``x.shape``, ``x.device``...).  ``__init__`` is left out (parameters and buffers move with
    the module's ``.to``), and so is a call whose result is moved at once (``torch.zeros(...).to(x)``)
    or whose line says why with ``# device: <reason>``.
    """
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    parent = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}

    def function_of(node):
        while node is not None and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            node = parent.get(node)
        return node

    found = []
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) or fn.name == "__init__":
            continue
        params = {a.arg for a in [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]} - {"self", "cls"}
        given_tensor = any(isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
                           and n.value.id in params and n.attr in TENSOR_ATTRIBUTES for n in ast.walk(fn))
        if not given_tensor:
            continue
        for node in ast.walk(fn):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in FACTORIES and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "torch" and function_of(node) is fn):
                continue
            moved = isinstance(parent.get(node), ast.Attribute) and parent[node].attr == "to"
            said = any(PRAGMA in lines[i - 1] for i in range(node.lineno, node.end_lineno + 1))
            if not any(k.arg == "device" for k in node.keywords) and not moved and not said:
                found.append(f"{_rel(path)}:{node.lineno} in {fn.name}: {lines[node.lineno - 1].strip()}")
    return found


def test_tensors_are_made_on_the_device_of_the_input():
    found = [hit for path in ALL_MODULES for hit in _undeviced_factories(path)]
    assert not found, ("these tensors are made on the CPU although an input tensor (maybe on a GPU) "
                       "is at hand: pass device=<input>.device, or say why with '# device: <reason>' "
                       "on the line:\n" + "\n".join(found))


def test_the_device_scan_finds_a_tensor_made_on_the_cpu(tmp_path):
    """The scan itself: a CPU tensor beside a given tensor is found; the three excuses are taken."""
    path = tmp_path / "module.py"
    path.write_text(textwrap.dedent("""
        import torch

        def wrong(x):
            return x + torch.zeros(x.shape[0])

        def right(x):
            a = torch.zeros(x.shape[0], device=x.device)
            b = torch.ones(3).to(x)
            c = torch.randperm(4, generator=None)  # device: a CPU generator
            return a, b, c

        def no_tensor_given(n):
            return torch.zeros(n)
    """))
    found = _undeviced_factories(path)
    assert len(found) == 1 and "in wrong:" in found[0]


# --- names -----------------------------------------------------------------------------------

# Import names of large packages that Colab's image preinstalls (its published `pip freeze`,
# February 2026) and Kaggle's image inherits from it: a course module of one of these names
# would stand in for the package whenever the module's folder is the working directory.
LIKELY_INSTALLED = {
    "accelerate", "albumentations", "bokeh", "cv2", "datasets", "diffusers", "einops", "fastai", "flax",
    "gradio", "huggingface_hub", "IPython", "ipywidgets", "jax", "kaggle", "kagglehub", "keras", "langchain",
    "lightgbm", "matplotlib", "networkx", "nltk", "numpy", "openai", "pandas", "peft", "PIL", "plotly",
    "safetensors", "scipy", "seaborn", "sentence_transformers", "skimage", "sklearn", "spacy", "statsmodels",
    "sympy", "tensorboard", "tensorflow", "timm", "tokenizers", "torch", "torchao", "torchaudio", "torchdata",
    "torchsummary", "torchtune", "torchvision", "tqdm", "transformers", "wandb", "xgboost", "yaml",
}


def _course_import_names() -> dict[str, str]:
    """Every name a course file answers to at the top level: its package, and its module name
    when its folder is the working directory (Jupyter starts a notebook's kernel there)."""
    names = {p.name: _rel(p) for p in [*ASSIGNMENT_DIRS, ROOT / "helpers"]}
    names.update({p.stem: _rel(p) for p in COURSE_FILES if p.stem != "__init__"})
    return names


def test_no_course_module_takes_the_name_of_a_likely_installed_package():
    ours = {"dl4cv-from-scratch", "dl4cv_from_scratch"}
    installed = {name for name, dists in importlib.metadata.packages_distributions().items()
                 if not ours & {d.lower() for d in dists}}
    clashes = {name: where for name, where in _course_import_names().items()
               if name in (LIKELY_INSTALLED | installed) or name.lower() in {n.lower() for n in LIKELY_INSTALLED}}
    assert not clashes, f"course files named like installed packages (rename them): {clashes}"


def _fake_package(site: Path, name: str) -> None:
    """Install (as pip would: a package and its dist-info) a package ``name`` that says who it is."""
    (site / name).mkdir(parents=True)
    (site / name / "__init__.py").write_text("WHO = 'the installed package'\n")
    info = site / f"{name}-99.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 99.0\n")
    (info / "top_level.txt").write_text(f"{name}\n")


def test_every_course_module_imports_beside_an_installed_transformers(tmp_path):
    """HuggingFace's ``transformers`` installed: each assignment folder as the working directory
    (as Jupyter runs its notebooks), every course module imports and ``import transformers``
    still finds the installed package."""
    site = tmp_path / "site"
    _fake_package(site, "transformers")
    modules = [_rel(p)[:-3].replace("/", ".") for p in ALL_MODULES if p.stem != "__init__"]
    code = textwrap.dedent(f"""
        import importlib, sys
        for name in {modules!r}:
            importlib.import_module(name)
        import transformers
        assert transformers.WHO == "the installed package", transformers.__file__
        print("ok", len({modules!r}))
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]))
    for folder in ASSIGNMENT_DIRS:
        # "" first on sys.path, as in a Jupyter kernel started in that folder
        result = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, ''); " + code],
                                cwd=folder, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"from {_rel(folder)}:\n{result.stderr[-3000:]}"


def test_the_old_name_of_the_transformer_module_still_imports_with_a_warning():
    import A4_rnn_transformer.transformer as new

    sys.modules.pop("A4_rnn_transformer.transformers", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from A4_rnn_transformer.transformers import Transformer
    assert Transformer is new.Transformer
    assert sys.modules["A4_rnn_transformer.transformers"] is new
    assert new.__spec__.name == "A4_rnn_transformer.transformer"
    assert any(issubclass(w.category, DeprecationWarning) and "renamed" in str(w.message) for w in caught)
    assert not (ROOT / "A4_rnn_transformer" / "transformers.py").exists()


# --- Colab / Kaggle set-up cell --------------------------------------------------------------

def _setup_cell(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return next(c for c in nb.cells if c.cell_type == "code").source


def test_every_notebook_opens_with_the_same_setup_cell():
    cells = {_rel(p): _setup_cell(p) for p in NOTEBOOKS}
    first = cells[_rel(NOTEBOOKS[0])]
    assert "REPO_URL = " in first and "pip" in first
    assert {k for k, v in cells.items() if v != first} == set(), "the set-up cells differ"


def _git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env=dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
                            GIT_COMMITTER_EMAIL="t@t"))


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_the_setup_cell_installs_the_course_on_colab(tmp_path):
    """The set-up cell, run as on Colab (a stand-in ``google.colab`` module, no course installed,
    the repository URL pointing at a local copy of this working tree), clones and installs the
    course; the notebook's next cell then imports it from the clone."""
    origin = tmp_path / "origin"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (origin / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, origin / name)
    _git("init", "-q", cwd=origin)
    _git("add", "-A", cwd=origin)
    _git("commit", "-q", "-m", "course", cwd=origin)

    # A Python that sees this environment's libraries (Colab has them) but has the course nowhere
    # on its path: a virtual environment whose site-packages point at ours through a .pth file.
    env_dir = tmp_path / "colab-python"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site_dirs = [p for p in sys.path if p.endswith("site-packages")]
    own_site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()
    Path(own_site, "outer_libraries.pth").write_text("\n".join(site_dirs) + "\n")
    stand_in = tmp_path / "stand-in"
    (stand_in / "google" / "colab").mkdir(parents=True)
    (stand_in / "google" / "colab" / "__init__.py").write_text("")

    cell = _setup_cell(NOTEBOOKS[0])
    assert cell.count('REPO_URL = "') == 1
    cell = re.sub(r'REPO_URL = "[^"]*"', f"REPO_URL = {str(origin)!r}", cell)
    next_cell = textwrap.dedent("""
        import helpers, helpers.config
        from helpers.config import setup
        print("course at", helpers.__file__)
    """)
    program = "import google.colab\n" + cell + "\n" + next_cell
    work = tmp_path / "content"
    work.mkdir()
    # pip offline: the libraries are there already, the build back-end (setuptools) too.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV"))}
    env.update(PYTHONPATH=str(stand_in), PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0",
               PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_CONSTRAINT="")
    result = subprocess.run([str(python), "-c", program], cwd=work, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    clone = work / "dl4cv-from-scratch"
    assert (clone / "helpers" / "config.py").is_file(), "the cell cloned the course next to the notebook"
    assert f"course at {clone / 'helpers' / '__init__.py'}" in result.stdout, result.stdout


# --- the version floor -----------------------------------------------------------------------

def _matrix():
    sys.path.insert(0, str(ROOT / ".ci"))
    try:
        import matrix
    finally:
        sys.path.remove(str(ROOT / ".ci"))
    return matrix


def test_the_floor_pins_every_library_the_course_needs_and_no_tool():
    pins = dict(pin.split("==") for pin in _matrix().floor_constraints())
    assert {"torch", "torchvision", "numpy"} <= set(pins)
    assert not {"pytest", "jupyterlab", "nbval"} & set(pins)


def test_the_floor_python_is_the_oldest_the_package_accepts():
    pyproject = (ROOT / "pyproject.toml").read_text()
    oldest = re.search(r'requires-python\s*=\s*">=\s*([0-9.]+)"', pyproject)[1]
    assert _matrix().SUPPORTED_PYTHONS[0] == oldest


def test_a_requirement_without_a_lower_bound_is_refused(tmp_path):
    broken = tmp_path / "requirements.txt"
    broken.write_text("# The course needs these:\ntorch\n# Tools\npytest>=7\n")
    with pytest.raises(SystemExit, match="name>=version"):
        _matrix().floor_constraints(broken)


def test_a_full_disk_is_reported_before_an_install_starts(tmp_path):
    _matrix().check_disk(tmp_path, needed_gb=0)
    with pytest.raises(RuntimeError, match=r"GB free at .*Free some space"):
        _matrix().check_disk(tmp_path, needed_gb=1e9)


def test_a_test_run_removes_its_scratch_folder(tmp_path):
    """conftest's throw-away folder (notebook results and checkpoints) is gone when pytest ends."""
    shutil.copy(ROOT / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_scratch.py").write_text(
        "import os\n"
        "def test_it():\n"
        "    folder = os.path.dirname(os.environ['DL4CV_RESULTS_DIR'])\n"
        "    assert os.path.isdir(folder)\n"
        "    print('SCRATCH=' + folder)\n")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "test_scratch.py"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    folder = re.search(r"SCRATCH=(\S+)", result.stdout)[1]
    assert "dl4cv-tests-" in folder and not os.path.exists(folder)
