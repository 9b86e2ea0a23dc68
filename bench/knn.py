"""kNN on the full Fashion-MNIST (60k train / 10k test): what bounds its speed, and scikit-learn beside it.

    python bench/knn.py                      # both parts; about 5 minutes on 2 cores
    python bench/knn.py --only gflops        # part 1 only: distances against torch.mm
    python bench/knn.py --only gflops --threads 1 2 --dtype float32 float64
    python bench/knn.py --only sklearn --k 5 --num-test 2000

1. Distances against their bound.  ``compute_distances_no_loops`` costs one
   matrix product ``x_train @ x_test.T`` plus a few passes over the result, so
   what bounds it is a plain ``torch.mm`` of the same shape: ``(num_train x D) @
   (D x num_test)`` with num_train = 60 000, D = 784 and, by default, the number
   of test images ``KnnClassifier.predict`` hands it at once (its 256 MiB chunk
   of float32 distances: 1 118).  Both run in this process, alternating (mm,
   distances, mm, ...) after a warm-up round, so a busy machine slows both
   alike; the medians are compared.  GFLOP/s count ``2 * num_train * num_test *
   D`` for both: the distance's extra work (squared norms ``2 * (num_train +
   num_test) * D``; the factor -2, the outer sum, the clamp and the square
   root, ``4 * num_train * num_test``) is under 0.3 % of that, so the GFLOP/s
   ratio is the time ratio.  The distance's time includes everything the
   function does, its input checks too.
2. The classifier beside scikit-learn: accuracy, wall time and peak memory of
   ``KnnClassifier.predict`` and of scikit-learn's brute-force kNN.  Each
   measurement runs in its own process so that its peak memory is its own:
   "extra MB" is the peak resident memory above what the process held once the
   data was loaded.  Both classifiers get the same float32 arrays and use every
   core (scikit-learn with ``n_jobs=-1``).

Prints tables; asserts nothing (tests/test_knn.py checks correctness).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from functools import partial
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


#: Rounds of part 1 (after one warm-up round).
ROUNDS = 5


def timed_rounds(fns: dict, rounds: int) -> dict:
    """Seconds of each call of ``fns``, called in turn ``rounds`` times after one untimed round."""
    seconds = {name: [] for name in fns}
    for round_ in range(rounds + 1):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            elapsed = time.perf_counter() - start
            if round_:
                seconds[name].append(elapsed)
    return seconds


def gflops(num_test: int | None, dtypes: list[str], threads: list[int], rounds: int) -> None:
    """Part 1: ``compute_distances_no_loops`` against ``torch.mm`` of the same shape; prints a table."""
    import torch

    from A1_knn.knn import CHUNK_BYTES, compute_distances_no_loops
    from helpers.datasets import load_fashion_mnist

    x_train, _, x_test, _ = load_fashion_mnist()
    default_threads = torch.get_num_threads()
    num_train, dim = x_train.shape[0], x_train[0].numel()
    if num_test is None:  # what KnnClassifier.predict computes at once
        num_test = CHUNK_BYTES // (num_train * x_train.element_size())
    flop = 2 * num_train * num_test * dim
    print(f"Part 1: distances ({num_train} x {num_test}, D = {dim}) against torch.mm "
          f"({num_train}x{dim}) @ ({dim}x{num_test}); {flop / 1e9:.1f} GFLOP each; "
          f"{rounds} rounds alternating, medians; torch {torch.__version__}")
    print(f"{'dtype':8} {'threads':>7} {'mm s':>7} {'dist s':>7} {'mm GFLOP/s':>11} {'dist GFLOP/s':>13} "
          f"{'dist / mm':>10} {'per round':>13}")
    for name in dtypes:
        dtype = getattr(torch, name)
        a, b = x_train.to(dtype), x_test[:num_test].to(dtype)
        fns = {"mm": partial(torch.mm, a.flatten(1), b.flatten(1).T), "dist": partial(compute_distances_no_loops, a, b)}
        for n in threads:
            torch.set_num_threads(n)
            seconds = timed_rounds(fns, rounds)
            mm, dist = (statistics.median(seconds[k]) for k in ("mm", "dist"))
            per_round = [d / m for d, m in zip(seconds["dist"], seconds["mm"], strict=True)]
            print(f"{name:8} {torch.get_num_threads():>7} {mm:7.2f} {dist:7.2f} {flop / mm / 1e9:11.1f} "
                  f"{flop / dist / 1e9:13.1f} {dist / mm:9.2f}x {min(per_round):5.2f}-{max(per_round):.2f}x")
    torch.set_num_threads(default_threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["gflops", "sklearn"], help="run one part (default: both)")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 5, 10], help="part 2: the k to try")
    parser.add_argument("--num-test", type=int, default=None,
                        help="test images (default: part 1 the classifier's chunk, part 2 all 10000)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1], help="part 1: torch threads to try")
    parser.add_argument("--dtype", nargs="+", default=["float32"], choices=["float32", "float64"],
                        help="part 1: dtypes to try (the course's data is float32)")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="part 1: timed rounds")
    parser.add_argument("--worker", choices=["ours", "sklearn"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.k[0], args.num_test)))
        return
    if args.only != "sklearn":
        gflops(args.num_test, args.dtype, args.threads, args.rounds)
    if args.only == "gflops":
        return
    import torch

    print(f"\nPart 2: Fashion-MNIST 60000 train, {args.num_test or 10000} test; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'k':>3} {'method':8} {'accuracy':>9} {'seconds':>8} {'extra MB':>9} {'time vs sklearn':>16}")
    for k in args.k:
        rows = {m: run(m, k, args.num_test) for m in ("sklearn", "ours")}
        for m, r in rows.items():
            ratio = r["seconds"] / rows["sklearn"]["seconds"]
            print(f"{k:>3} {m:8} {100 * r['accuracy']:8.2f}% {r['seconds']:8.2f} {r['extra_mb']:9.0f} {ratio:15.2f}x")


if __name__ == "__main__":
    main()
