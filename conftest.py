"""pytest settings for the whole repository: unit tests and nbval notebook runs.

Set at import, before any kernel starts, so every notebook kernel inherits them:
fast mode, offline, CPU (or ``DL4CV_TEST_DEVICE``), seed 0, and results/checkpoints in a throw-away folder
(a test run never overwrites the repository's results/ or resumes a checkpoint).
"""

import atexit
import os
import shutil
import tempfile

_SCRATCH = tempfile.mkdtemp(prefix="dl4cv-tests-")
# Removed when this process ends (each pytest-xdist worker makes and removes its own): the notebooks'
# checkpoints alone are about 250 MB per run, and a machine that runs the suite often fills its disk.
atexit.register(shutil.rmtree, _SCRATCH, ignore_errors=True)

os.environ.update({
    "DL4CV_FAST": "1",
    "DL4CV_OFFLINE": "1",
    # CPU unless DL4CV_TEST_DEVICE says otherwise (`make gpu-check`: cuda); a DL4CV_DEVICE the
    # user exported for their own notebooks does not leak into the tests.
    "DL4CV_DEVICE": os.environ.get("DL4CV_TEST_DEVICE", "cpu"),
    "DL4CV_SEED": "0",
    "DL4CV_RESULTS_DIR": os.path.join(_SCRATCH, "results"),
    "DL4CV_CHECKPOINT_DIR": os.path.join(_SCRATCH, "checkpoints"),
    # Keep the debugger's frozen-modules notice out of kernel output.
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",
})
os.environ.pop("DL4CV_DATASET", None)  # each notebook picks its own offline dataset

# pytest-xdist runs one notebook kernel (or test module) per worker at a time.  Each would
# otherwise start one math thread per core, so on a 2-core machine 2 workers run 4+ threads and
# small-op training loops slow down many times over.  Share the cores instead (a value the
# user set is kept).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    _threads = str(max(1, (os.cpu_count() or 1) // _WORKERS))
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, _threads)


def pytest_collectstart(collector):
    """nbval: compare stdout and plain text only (stderr, HTML and JS vary between machines)."""
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += ("stderr", "text/html", "application/javascript")
