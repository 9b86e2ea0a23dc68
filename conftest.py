"""pytest settings for the whole repository: unit tests and nbval notebook runs.

Set at import, before any kernel starts, so every notebook kernel inherits them:
fast mode, offline, CPU, seed 0, and results/checkpoints in a throw-away folder
(a test run never overwrites the repository's results/ or resumes a checkpoint).
"""

import os
import tempfile

_SCRATCH = tempfile.mkdtemp(prefix="dl4cv-tests-")

os.environ.update({
    "DL4CV_FAST": "1",
    "DL4CV_OFFLINE": "1",
    "DL4CV_DEVICE": "cpu",
    "DL4CV_SEED": "0",
    "DL4CV_RESULTS_DIR": os.path.join(_SCRATCH, "results"),
    "DL4CV_CHECKPOINT_DIR": os.path.join(_SCRATCH, "checkpoints"),
    # Keep the debugger's frozen-modules notice out of kernel output.
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",
})
os.environ.pop("DL4CV_DATASET", None)  # each notebook picks its own offline dataset


def pytest_collectstart(collector):
    """nbval: compare stdout and plain text only (stderr, HTML and JS vary between machines)."""
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += ("stderr", "text/html", "application/javascript")
