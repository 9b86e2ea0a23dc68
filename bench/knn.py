"""kNN on the full Fashion-MNIST (60k train / 10k test): ours beside scikit-learn.

    python bench/knn.py            # k = 1, 5, 10; about 3 minutes on 2 cores
    python bench/knn.py --k 5 --num-test 2000

Each measurement runs in its own process so that its peak memory is its own:
"extra MB" is the peak resident memory above what the process held once the
data was loaded.  Both classifiers get the same float32 arrays and use every
core (scikit-learn with ``n_jobs=-1``).  Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _rss_mb(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process in MB, from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    """Make VmHWM restart from the current RSS (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def worker(method: str, k: int, num_test: int | None) -> dict:
    """Load the data, then time one classifier; return its figures."""
    import torch

    from helpers.datasets import load_fashion_mnist

    x_train, y_train, x_test, y_test = load_fashion_mnist(num_test=num_test)
    if method == "sklearn":
        from sklearn.neighbors import KNeighborsClassifier

        a, b = x_train.flatten(1).numpy(), x_test.flatten(1).numpy()
        ya = y_train.numpy()
    base = _rss_mb("VmRSS")
    _reset_peak()
    start = time.perf_counter()
    if method == "ours":
        from A1_knn.knn import KnnClassifier

        y_pred = KnnClassifier(x_train, y_train).predict(x_test, k=k)
    else:
        clf = KNeighborsClassifier(n_neighbors=k, algorithm="brute", n_jobs=-1).fit(a, ya)
        y_pred = torch.from_numpy(clf.predict(b))
    seconds = time.perf_counter() - start
    accuracy = (y_pred == y_test).double().mean().item()
    return {"method": method, "k": k, "accuracy": accuracy, "seconds": seconds,
            "extra_mb": _rss_mb("VmHWM") - base, "num_test": len(y_test)}


def run(method: str, k: int, num_test: int | None) -> dict:
    cmd = [sys.executable, __file__, "--worker", method, "--k", str(k)]
    if num_test:
        cmd += ["--num-test", str(num_test)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument("--num-test", type=int, default=None, help="test images (default: all 10000)")
    parser.add_argument("--worker", choices=["ours", "sklearn"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.k[0], args.num_test)))
        return
    import torch

    print(f"Fashion-MNIST 60000 train, {args.num_test or 10000} test; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'k':>3} {'method':8} {'accuracy':>9} {'seconds':>8} {'extra MB':>9} {'time vs sklearn':>16}")
    for k in args.k:
        rows = {m: run(m, k, args.num_test) for m in ("sklearn", "ours")}
        for m, r in rows.items():
            ratio = r["seconds"] / rows["sklearn"]["seconds"]
            print(f"{k:>3} {m:8} {100 * r['accuracy']:8.2f}% {r['seconds']:8.2f} {r['extra_mb']:9.0f} {ratio:15.2f}x")


if __name__ == "__main__":
    main()
