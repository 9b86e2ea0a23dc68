"""Careless inputs and hostile files, tried on two checkouts of the course: counts of each outcome.

About 160 attempts: damaged checkpoints and saved models (bit flips, truncation, empty, random,
foreign), crafted exports, out-of-range and non-finite function inputs, the papers' command lines.

Usage (a second checkout to compare with, e.g. a commit before a change)::

    git worktree add /tmp/before 089f9f0
    python bench/hostile_inputs.py --both /tmp/before     # both checkouts (this one is "after"), then the table
    python bench/hostile_inputs.py --compare              # the table again from the saved JSON files

Each checkout runs in a child process with its own folder first on ``PYTHONPATH``; results, temporary
files and checkpoints go to ``$DL4CV_PROBE_DIR`` (default ``<tmp>/dl4cv-hostile``).

Outcomes: clear / unclear / silent / code ran, plus "ok" for the few legitimate inputs whose
correct handling is what is measured (knn label 10**9, empty test batch, good PNG next to a bad one,
16-bit PNG).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

BASE = Path(os.environ.get("DL4CV_PROBE_DIR") or Path(tempfile.gettempdir()) / "dl4cv-hostile")
CHECKOUTS = {"before": os.environ.get("DL4CV_PROBE_BEFORE", ""), "after": str(Path(__file__).resolve().parents[1])}
OUTCOMES = ("clear", "unclear", "silent", "code ran", "ok")
INTERNAL = ("cannot reshape", "division by zero", "max() arg is an empty sequence", "failed finding central directory",
            "expected a non-empty list of Tensors", "can't allocate memory", "Unpickl")
WHAT_WORDS = ("damaged", "truncated", "empty", "checksum", "not a ", "not written", "cannot", "can't", "does not",
              "no ", "refused", "lacks", "holds", "expected", "must", "is a file", "takes a", "not an")


def child_env(label: str, root: str, **extra) -> dict:
    env = dict(os.environ)
    env.update(PYTHONPATH=root, DL4CV_PROBE_LABEL=label, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               DL4CV_OFFLINE="1", DL4CV_FAST="1",
               DL4CV_CHECKPOINT_DIR=str(BASE / f"ckpt-{label}"), DL4CV_RESULTS_DIR=str(BASE / "res"),
               MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env


# =========================================================================== compare mode


def compare() -> None:
    res = {}
    for label in CHECKOUTS:
        path = BASE / f"results-{label}.json"
        res[label] = {r["id"]: r for r in json.loads(path.read_text())}
    cats = []
    for r in list(res["before"].values()) + list(res["after"].values()):
        if r["cat"] not in cats:
            cats.append(r["cat"])
    head = "  ".join(f"{o[:7]:>7}" for o in OUTCOMES)
    print(f"{'category':<14}| {'BEFORE n':>8}  {head} | {'AFTER n':>7}  {head} | same")
    tot = {lab: {o: 0 for o in ("n", *OUTCOMES)} for lab in CHECKOUTS}
    same_total = 0
    for cat in cats:
        cells = []
        for lab in CHECKOUTS:
            rows = [r for r in res[lab].values() if r["cat"] == cat]
            counts = {o: sum(r["outcome"] == o for r in rows) for o in OUTCOMES}
            tot[lab]["n"] += len(rows)
            for o in OUTCOMES:
                tot[lab][o] += counts[o]
            cells.append(f"{len(rows):>8}  " + "  ".join(f"{counts[o]:>7}" for o in OUTCOMES))
        ids = [i for i in res["after"] if res["after"][i]["cat"] == cat and i in res["before"]]
        same = sum(res["before"][i]["outcome"] == res["after"][i]["outcome"] for i in ids)
        same_total += same
        print(f"{cat:<14}| {cells[0]} | {cells[1][1:]} | {same}/{len(ids)}")
    cells = [f"{tot[lab]['n']:>8}  " + "  ".join(f"{tot[lab][o]:>7}" for o in OUTCOMES) for lab in CHECKOUTS]
    print(f"{'TOTAL':<14}| {cells[0]} | {cells[1][1:]} | {same_total}/{len(res['after'])}")
    print("\nSame outcome before and after (non-clear, non-ok after):")
    for i, r in res["after"].items():
        b = res["before"].get(i)
        if b and b["outcome"] == r["outcome"] and r["outcome"] not in ("clear", "ok"):
            print(f"  {i}: {r['outcome']}")
    print("\nSame outcome before and after (clear/ok both):",
          ", ".join(i for i, r in res["after"].items()
                    if i in res["before"] and res["before"][i]["outcome"] == r["outcome"]
                    and r["outcome"] in ("clear", "ok")) or "-")
    print("\nNon-clear AFTER outcomes:")
    for i, r in res["after"].items():
        if r["outcome"] not in ("clear", "ok"):
            b = res["before"].get(i, {}).get("outcome", "?")
            print(f"  [{r['outcome']}] {i} (before: {b}): {r['msg'][:150]}")


def run_both() -> None:
    for label, root in CHECKOUTS.items():
        print(f"--- running {label} ({root})", flush=True)
        t = time.time()
        subprocess.run([sys.executable, __file__], cwd=root, env=child_env(label, root), check=False)
        print(f"--- {label} took {time.time() - t:.0f} s", flush=True)
    compare()


if __name__ == "__main__" and "--compare" in sys.argv:
    compare()
    sys.exit(0)
if __name__ == "__main__" and "--both" in sys.argv:
    if len(sys.argv) <= sys.argv.index("--both") + 1:
        sys.exit("usage: python bench/hostile_inputs.py --both BEFORE_CHECKOUT")
    CHECKOUTS["before"] = str(Path(sys.argv[sys.argv.index("--both") + 1]).resolve())
    BASE.mkdir(parents=True, exist_ok=True)
    run_both()
    sys.exit(0)

# =========================================================================== probe mode (inside one checkout)

import io  # noqa: E402
import random  # noqa: E402
import zipfile  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

torch.set_num_threads(1)
ROOT = str(Path.cwd().resolve())
LABEL = os.environ.get("DL4CV_PROBE_LABEL", "after")
WORK = BASE / f"run-{LABEL}"
CKPT = BASE / f"ckpt-{LABEL}"
for folder in (WORK, CKPT, BASE / f"ckpt-{LABEL}-none"):
    shutil.rmtree(folder, ignore_errors=True)
WORK.mkdir(parents=True)
os.environ.update(child_env(LABEL, ROOT))

from A1_knn import knn  # noqa: E402
from A2_linear.linear_classifier import LinearSVM  # noqa: E402
from A3_fc_cnn import fully_connected_networks as fcn  # noqa: E402
from A5_detection import common  # noqa: E402
from helpers import config as hconfig  # noqa: E402
from helpers import export as hexport  # noqa: E402
from helpers.train import load_checkpoint, save_checkpoint  # noqa: E402
from papers import vit  # noqa: E402
from papers.detr import DETR, decode_predictions  # noqa: E402

RESULTS: list[dict] = []


def record(cat, ident, outcome, msg):
    msg = " ".join(str(msg).split())
    RESULTS.append({"cat": cat, "id": ident, "outcome": outcome, "msg": msg[:300]})
    print(f"[{LABEL}] {cat:<12} {ident:<40} {outcome:<8} {msg[:110]}", flush=True)


def classify(e: BaseException, names=(), file=False) -> tuple[str, str]:
    text = str(e)
    msg = f"{type(e).__name__}: {text}"
    frames = traceback.extract_tb(e.__traceback__)
    last = frames[-1].filename if frames else ""
    own = last.startswith(ROOT + "/") and "site-packages" not in last
    if re.search(r"weights_only.{0,40}False", text, re.S):
        return "unclear", "[advises weights_only=False] " + msg
    if not own:
        return "unclear", f"[raised in {Path(last).name}] " + msg
    if any(bit in text for bit in INTERNAL) or isinstance(e, (EOFError, ZeroDivisionError, MemoryError)):
        return "unclear", "[internal torch/Python message] " + msg
    if names and not any(n in text for n in names):
        return "unclear", "[does not name the argument/file] " + msg
    if file and not any(w in text.lower() for w in WHAT_WORDS):
        return "unclear", "[does not say what is wrong] " + msg
    return "clear", msg


def attempt(cat, ident, fn, names=(), file=False, judge=None, marker: Path | None = None):
    try:
        result = fn()
    except Exception as e:  # noqa: BLE001
        outcome, msg = classify(e, names, file)
    else:
        outcome, msg = judge(result) if judge else ("silent", f"returned {short(result)}")
    if marker is not None and marker.exists():
        outcome, msg = "code ran", f"marker {marker.name} created; then: {msg}"
    record(cat, ident, outcome, msg)


def short(x) -> str:
    if isinstance(x, torch.Tensor):
        return f"tensor{tuple(x.shape)} {x.flatten()[:4].tolist()}"
    return repr(x)[:120]


# --------------------------------------------------------------------------- damaging files


def damaged_variants(path: Path, seed: int, flips: int = 20):
    """(name, bytes) of damaged copies of ``path``."""
    data = path.read_bytes()
    rng = random.Random(seed)
    out = []
    for i in range(flips):
        pos = int(rng.random() * len(data))
        bit = rng.randrange(8)
        b = bytearray(data)
        b[pos] ^= 1 << bit
        out.append((f"flip{i:02d}", bytes(b)))
    out.append(("truncated", data[: len(data) // 2]))
    out.append(("zero-bytes", b""))
    out.append(("random-bytes", random.Random(seed + 1).randbytes(len(data))))
    buf = io.BytesIO()
    torch.save({"state": {"w": torch.zeros(2)}, "epoch": 3}, buf)
    out.append(("other-dict", buf.getvalue()))
    return out


def cat_checkpoints():
    kinds = []

    def w_train(p):
        m = nn.Linear(4, 3)
        save_checkpoint(p, m, torch.optim.SGD(m.parameters(), lr=0.1))

    kinds.append(("train", w_train, lambda p: load_checkpoint(p, nn.Linear(4, 3))))
    kinds.append(("A3fcn", lambda p: fcn.FullyConnectedNet([5], input_dim=6, num_classes=3).save(p),
                  lambda p: fcn.FullyConnectedNet([5], input_dim=6, num_classes=3).load(p)))

    def w_svm(p):
        s = LinearSVM()
        s.W = torch.randn(6, 3)
        s.save(p)

    def r_svm(p):
        s = LinearSVM()
        s.load(p)
        return s.W

    kinds.append(("A2svm", w_svm, r_svm))
    kinds.append(("savemodel", lambda p: hexport.save_model(nn.Linear(4, 3), {"in_features": 4, "out_features": 3}, p),
                  lambda p: hexport.load_model(p, nn.Linear)))
    torch.manual_seed(0)
    import hashlib
    for name, read in (("train", kinds[0][2]), ("savemodel", kinds[3][2])):
        # a hostile file that carries the right checksum: a pickled os.mkdir inside the payload
        marker = WORK / f"MARK_ckpt_{name}"
        buf = io.BytesIO()
        torch.save({"format": 1, "model": Evil(marker), "config": {}}, buf)
        body = buf.getvalue()
        p = WORK / f"{name}_hostile.pt"
        p.write_bytes(body + b"\n#dl4cv-sha256:" + hashlib.sha256(body).hexdigest().encode())
        attempt("1 checkpoints", f"{name}/hostile-pickle+checksum", lambda p=p, r=read: r(p), names=(str(p), p.name),
                file=True, marker=marker)
    for k, (name, write, read) in enumerate(kinds):
        good = WORK / f"{name}_good.pt"
        write(good)
        read(good)  # the good file loads
        for vname, data in damaged_variants(good, seed=100 + k):
            p = WORK / f"{name}_{vname}.pt"
            p.write_bytes(data)
            attempt("1 checkpoints", f"{name}/{vname}", lambda p=p, read=read: read(p), names=(str(p), p.name),
                    file=True)


# --------------------------------------------------------------------------- exports


class Evil:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def evil_bytes(marker) -> bytes:
    buf = io.BytesIO()
    torch.save(Evil(marker), buf)
    return buf.getvalue()


def rewrite_zip(src: Path, dst: Path, change) -> Path:
    """Copy the archive ``src`` to ``dst``; ``change(name, data) -> data`` edits entries."""
    with zipfile.ZipFile(src) as zi, zipfile.ZipFile(dst, "w") as zo:
        for info in zi.infolist():
            zo.writestr(info, change(info.filename, zi.read(info)))
    return dst


def pickle_entry(marker):
    evil = evil_bytes(marker)
    return lambda name, data: evil if name.endswith(".pt") else data


def use_pickle_weight(marker):
    evil = evil_bytes(marker)

    def change(name, data):
        if name.endswith("model_weights_config.json"):
            cfg = json.loads(data)
            first = next(iter(cfg["config"]))
            cfg["config"][first]["use_pickle"] = True
            return json.dumps(cfg).encode()
        if name.endswith("weights/weight_0"):
            return evil
        return data

    return change


def cat_exports():
    cat = "2 exports"
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 2))
    good = hexport.export_model(net, torch.rand(2, 3, 8, 8), WORK / "net.pt2", metadata={"image_size": 8})
    hexport.load_exported(good)
    for loader_name, loader in (("load_exported", hexport.load_exported), ("export_metadata", hexport.export_metadata)):
        for kind, make in (("pickled-.pt-entry", pickle_entry), ("use_pickle-weight", use_pickle_weight)):
            marker = WORK / f"MARK_{loader_name}_{kind}"
            p = rewrite_zip(good, WORK / f"evil_{loader_name}_{kind}.pt2", make(marker))
            attempt(cat, f"{loader_name}/{kind}", lambda p=p, f=loader: f(p), names=(str(p), p.name), file=True,
                    marker=marker)
    data = good.read_bytes()
    variants = [("truncated", data[: len(data) // 2]), ("zero-bytes", b""),
                ("random-bytes", random.Random(5).randbytes(len(data)))]
    rng = random.Random(6)
    with zipfile.ZipFile(good) as z:
        info = z.getinfo(next(n for n in z.namelist() if n.endswith("weights/weight_2")))
    head = info.header_offset
    start = head + 30 + int.from_bytes(data[head + 26:head + 28], "little") + \
        int.from_bytes(data[head + 28:head + 30], "little")       # the local header's own name and extra
    for i in range(3):  # flips inside the stored bytes of one weight (the archive is stored uncompressed)
        b = bytearray(data)
        b[start + rng.randrange(info.file_size)] ^= 1 << rng.randrange(8)
        variants.append((f"weight-flip{i}", bytes(b)))
    for i in range(5):  # flips anywhere in the archive
        b = bytearray(data)
        b[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        variants.append((f"any-flip{i}", bytes(b)))
    probe_in = torch.rand(2, 3, 8, 8)
    expected = hexport.load_exported(good)(probe_in)

    def same_as_good(out):
        same = isinstance(out, torch.Tensor) and out.shape == expected.shape and torch.equal(out, expected)
        return "silent", ("loaded; outputs identical to the good export" if same
                          else f"loaded; outputs CHANGED: {short(out)}")

    ckpt = WORK / "as_export.pt2"
    save_checkpoint(ckpt, nn.Linear(4, 3))
    variants.append(("checkpoint-renamed-.pt2", ckpt.read_bytes()))
    for vname, blob in variants:
        p = WORK / f"export_{vname}.pt2"
        p.write_bytes(blob)
        attempt(cat, f"load_exported/{vname}", lambda p=p: hexport.load_exported(p)(probe_in),
                names=(str(p), p.name), file=True, judge=same_as_good)


# --------------------------------------------------------------------------- function inputs


def tiny_vit(**kw):
    s = dict(image_size=8, patch_size=4, in_channels=1, num_classes=3, emb_dim=8, depth=2, num_heads=2, mlp_dim=16)
    s.update(kw)
    return vit.VisionTransformer(**s)


def knn_big_label():
    code = ("import torch, time\nfrom A1_knn.knn import KnnClassifier\nt = time.time()\n"
            "x = torch.tensor([[0., 0.], [1., 1.], [5., 5.], [9., 9.]])\n"
            "c = KnnClassifier(x, torch.tensor([0, 1, 10**9, 1]))\n"
            "p = c.predict(torch.tensor([[5.1, 5.], [0.1, 0.]]), k=1)\n"
            "print('RESULT', p.tolist(), round(time.time() - t, 3))\n")
    script = WORK / "knn_big.py"
    script.write_text(code)
    cmd = f"ulimit -v 4000000; exec {sys.executable} {script}"
    t = time.time()
    try:
        r = subprocess.run(["bash", "-c", cmd], cwd=ROOT, env=os.environ.copy(), capture_output=True, text=True,
                           timeout=20)
    except subprocess.TimeoutExpired:
        record("3 functions", "knn/label-1e9", "unclear", "timed out after 20 s")
        return
    dt = time.time() - t
    if r.returncode == 0 and "RESULT [1000000000, 0]" in r.stdout:
        record("3 functions", "knn/label-1e9", "ok", f"correct {r.stdout.strip()} in {dt:.1f} s (incl. import)")
    else:
        last = (r.stderr.strip().splitlines() or ["?"])[-1]
        record("3 functions", "knn/label-1e9", "unclear" if r.returncode else "silent",
               f"rc={r.returncode} in {dt:.1f}s: {last or r.stdout}")


def cat_functions():
    cat = "3 functions"
    nan, inf = float("nan"), float("inf")
    knn_big_label()
    x, y = torch.rand(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    clf = knn.KnnClassifier(x, y)
    attempt(cat, "knn/predict-empty-test", lambda: clf.predict(torch.zeros(0, 3)), names=("x_test",),
            judge=lambda r: ("ok", f"returned {short(r)}") if tuple(r.shape) == (0,) else ("silent", short(r)))
    attempt(cat, "knn/check_accuracy-empty-test",
            lambda: clf.check_accuracy(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), quiet=True),
            names=("x_test", "y_test", "empty"))
    attempt(cat, "knn/empty-train", lambda: knn.KnnClassifier(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)),
            names=("x_train",))
    attempt(cat, "knn/cross_validate-k_choices=[]", lambda: knn.knn_cross_validate(x, y, num_folds=2, k_choices=[]),
            names=("k_choices",))
    attempt(cat, "knn/get_best_k({1:[]})", lambda: knn.knn_get_best_k({1: []}), names=("k_to_accuracies", "k = [1]"))
    xn = x.clone()
    xn[2, 1] = nan
    attempt(cat, "knn/NaN-x_train", lambda: knn.KnnClassifier(xn, y).predict(torch.rand(2, 3)), names=("x_train",))
    attempt(cat, "knn/inf-x_test", lambda: clf.predict(torch.tensor([[inf, 0.0, 0.0]])), names=("x_test",))
    attempt(cat, "knn/no_loops-NaN-x_test", lambda: knn.compute_distances_no_loops(x, torch.full((2, 3), nan)),
            names=("x_test",))
    attempt(cat, "knn/predict_labels-NaN-dists",
            lambda: knn.predict_labels(torch.tensor([[nan, 1.0], [0.0, 2.0]]), torch.tensor([0, 1]), 1),
            names=("dists",))
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    attempt(cat, "A5/nms-iou=1.5", lambda: common.nms(boxes, scores, 1.5), names=("iou_threshold",))
    attempt(cat, "A5/nms-iou=-1", lambda: common.nms(boxes, scores, -1), names=("iou_threshold",))
    attempt(cat, "A5/nms-iou=NaN", lambda: common.nms(boxes, scores, nan), names=("iou_threshold",))
    attempt(cat, "A5/class_spec_nms-class=-1",
            lambda: common.class_spec_nms(boxes, scores, torch.tensor([0, -1, 1])), names=("class_ids",))
    attempt(cat, "A5/nms-NaN-scores", lambda: common.nms(boxes, torch.tensor([0.9, nan, 0.7])), names=("scores",))
    pred = [{"boxes": boxes, "scores": torch.tensor([nan, 0.8, 0.7]), "labels": torch.tensor([0, 0, 1])}]
    gt = [{"boxes": boxes[:2], "labels": torch.tensor([0, 1])}]
    attempt(cat, "A5/evaluate-NaN-scores", lambda: common.evaluate_detections(pred, gt, 2), names=("scores",))
    attempt(cat, "A5/average_precision-p>1",
            lambda: common.average_precision(torch.tensor([1.5, 1.2]), torch.tensor([0.5, 1.0])),
            names=("precision",))
    attempt(cat, "A5/class_candidates-thresh=2", lambda: common.class_candidates(torch.rand(3, 2), 2.0),
            names=("score_thresh",))
    attempt(cat, "detr/decode-thresh=2",
            lambda: decode_predictions(torch.randn(1, 3, 4), torch.rand(1, 3, 4), 32, 2.0), names=("score_thresh",))
    w = torch.randn(3, 2)
    dw = torch.randn(3, 2)
    dwn = dw.clone()
    dwn[1, 1] = nan
    attempt(cat, "A3/sgd-lr=-1", lambda: fcn.sgd(w, dw, {"learning_rate": -1.0}), names=("learning_rate",))
    attempt(cat, "A3/adam-lr=-1", lambda: fcn.adam(w, dw, {"learning_rate": -1.0}), names=("learning_rate",))
    attempt(cat, "A3/sgd-NaN-dw", lambda: fcn.sgd(w, dwn), names=("dw",))
    attempt(cat, "A3/adam-NaN-dw", lambda: fcn.adam(w, dwn), names=("dw",))
    attempt(cat, "A3/momentum=1.5", lambda: fcn.sgd_momentum(w, dw, {"momentum": 1.5}), names=("momentum",))
    attempt(cat, "A3/adam-beta1=1", lambda: fcn.adam(w, dw, {"beta1": 1.0}), names=("beta1",))
    attempt(cat, "A3/FCN-dropout=1.0", lambda: fcn.FullyConnectedNet([5], input_dim=6, num_classes=3, dropout=1.0),
            names=("dropout",))
    torch.manual_seed(2)
    model = tiny_vit()
    attempt(cat, "vit/predict-empty", lambda: vit.predict(model, torch.rand(0, 1, 8, 8)), names=("images",))
    attempt(cat, "vit/predict-x255", lambda: vit.predict(model, torch.rand(2, 1, 8, 8) * 255), names=("images",))
    attempt(cat, "vit/predict-NaN", lambda: vit.predict(model, torch.full((1, 1, 8, 8), nan)), names=("images",))
    attempt(cat, "config/seed=1e23", lambda: hconfig.get_config(environ={"DL4CV_SEED": "9" * 23}),
            names=("DL4CV_SEED",))
    attempt(cat, "config/seed=-1", lambda: hconfig.get_config(environ={"DL4CV_SEED": "-1"}), names=("DL4CV_SEED",))


# --------------------------------------------------------------------------- command lines


def cli(module, args, **env_extra):
    env = os.environ.copy()
    env.update(env_extra)
    t = time.time()
    try:
        r = subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=180)
    except subprocess.TimeoutExpired:
        return 124, "", "timed out", 180.0
    return r.returncode, r.stdout, r.stderr, time.time() - t


def cli_error(rc, err, names, file=False) -> tuple[str, str]:
    """Classify a failed command by its stderr."""
    lines = [line for line in err.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else f"(no stderr, rc={rc})"
    if re.search(r"weights_only.{0,40}False", err, re.S):
        return "unclear", f"[advises weights_only=False] rc={rc} {last}"
    text = err
    if "Traceback" in err:
        files = re.findall(r'File "([^"]+)"', err)
        where = files[-1] if files else ""
        text = last
        if not (where.startswith(ROOT + "/") and "site-packages" not in where):
            return "unclear", f"[traceback from {Path(where).name}] rc={rc} {last}"
        pre = "[traceback] "
    else:
        pre = ""
    if names and not any(n in text for n in names):
        return "unclear", f"[does not name it] rc={rc} {last}"
    if file and not any(wd in text.lower() for wd in WHAT_WORDS):
        return "unclear", f"[does not say what is wrong] rc={rc} {last}"
    return "clear", f"{pre}rc={rc} {last}"


def cat_cli():
    cat = "4 cli"
    from PIL import Image

    torch.manual_seed(8)
    names = [f"kind{i}" for i in range(10)]
    config = dict(image_size=8, patch_size=4, in_channels=1, num_classes=10, emb_dim=8, depth=1, num_heads=2,
                  mlp_dim=8, class_names=names)
    model = vit.VisionTransformer(**config)
    nn.init.normal_(model.head.weight, std=3.0)
    ckpt = hexport.save_model(model, config, CKPT / "fast" / "vit_model.pt")
    export = vit.save_export(model, WORK / "vit.pt2")
    dcfg = dict(num_classes=3, d_model=16, num_heads=2, num_encoder_layers=1, num_decoder_layers=1, ffn_dim=16,
                num_queries=3, image_size=32, class_names=["a", "b", "c"])
    dckpt = hexport.save_model(DETR(**dcfg), dcfg, CKPT / "fast" / "detr_model.pt")

    good = WORK / "good.png"
    Image.fromarray((np.random.RandomState(0).rand(8, 8, 3) * 255).astype(np.uint8)).save(good)
    big = WORK / "big.png"
    Image.fromarray((np.random.RandomState(1).rand(64, 64, 3) * 255).astype(np.uint8)).save(big)
    trunc = WORK / "truncated.png"
    trunc.write_bytes(big.read_bytes()[: big.stat().st_size // 2])
    g16 = WORK / "grey16.png"
    Image.fromarray(np.full((8, 8), 30000, dtype=np.uint16)).save(g16)
    text_png = WORK / "notes.png"
    text_png.write_text("this is not an image\n")

    # 1. truncated + good PNG
    out = WORK / "out_trunc"
    rc, so, se, dt = cli("papers.vit", ["predict", trunc, good, "--checkpoint", ckpt, "--out", out])
    pj = out / "predictions.json"
    got = [row["image"] for row in json.loads(pj.read_text())["predictions"]] if pj.is_file() else []
    if rc == 0 and got == [str(good)] and str(trunc) in se:
        record(cat, "vit/truncated+good-png", "clear", f"good one predicted, stderr: {se.strip().splitlines()[0]}")
    elif rc == 0:
        record(cat, "vit/truncated+good-png", "silent", f"rc=0 predicted {got}; stderr: {se.strip()[:100]}")
    else:
        o, m = cli_error(rc, se, (str(trunc), trunc.name), file=True)
        record(cat, "vit/truncated+good-png", o, f"good one NOT predicted; {m}")

    # 2. 16-bit grey PNG (30000 / 65535 = 0.458)
    level = 30000 / 65535
    rd = hexport.read_images([g16], 8, 1)
    attempt(cat, "read_images/16-bit-png", lambda: rd,
            judge=lambda r: ("ok", f"mean {float(r.mean()):.4f} (expected {level:.4f})")
            if abs(float(r.mean()) - level) < 0.01 else ("silent", f"mean {float(r.mean()):.4f}, "
                                                         f"expected {level:.4f} (saturated)"))
    out = WORK / "out_16"
    rc, so, se, dt = cli("papers.vit", ["predict", g16, "--checkpoint", ckpt, "--out", out])
    right = vit.predict(model, torch.full((1, 1, 8, 8), level))[0]
    sat = vit.predict(model, torch.ones(1, 1, 8, 8))[0]
    if rc == 0:
        top = json.loads((out / "predictions.json").read_text())["predictions"][0]["top"][0]
        p_right = float(right[top["id"]])
        if abs(top["probability"] - p_right) < 1e-4 and top["id"] == int(right.argmax()):
            record(cat, "vit/16-bit-png", "ok", f"top {top['class']} p={top['probability']} matches the 0.458 image")
        else:
            record(cat, "vit/16-bit-png", "silent",
                   f"top {top['class']} p={top['probability']}; right image gives {names[int(right.argmax())]} "
                   f"p={float(right.max()):.4f}, all-ones gives {names[int(sat.argmax())]} p={float(sat.max()):.4f}")
    else:
        record(cat, "vit/16-bit-png", *cli_error(rc, se, (str(g16), g16.name), file=True))

    def fail_case(ident, module, args, names, file=False, marker=None, **env):
        rc, so, se, dt = cli(module, args, **env)
        if rc == 0:
            outcome, msg = "silent", f"rc=0: {so.strip()[-120:]}"
        else:
            outcome, msg = cli_error(rc, se, names, file)
        if marker is not None and marker.exists():
            outcome, msg = "code ran", f"marker {marker.name} created; then: {msg}"
        record(cat, ident, outcome, msg)

    # 3. detector threshold out of range
    for thresh in ("2", "-0.5"):
        fail_case(f"detr/--score-thresh={thresh}", "papers.detr",
                  ["predict", good, "--checkpoint", dckpt, "--score-thresh", thresh, "--out", WORK / f"out_d{thresh}"],
                  ("--score-thresh", "score_thresh"))
    # 4. --out is an existing file
    existing = WORK / "existing.txt"
    existing.write_text("keep me\n")
    fail_case("vit/--out-existing-file", "papers.vit", ["predict", good, "--checkpoint", ckpt, "--out", existing],
              (str(existing), "--out"))
    # 5. a .pt given as --export, 6. a .pt2 given as --checkpoint
    fail_case("vit/.pt-as---export", "papers.vit", ["predict", good, "--export", ckpt, "--out", WORK / "o5"],
              (str(ckpt), "--export"), file=True)
    fail_case("vit/.pt2-as---checkpoint", "papers.vit", ["predict", good, "--checkpoint", export, "--out", WORK / "o6"],
              (str(export), "--checkpoint"), file=True)
    # 7./8. no checkpoint at all, in an empty checkpoint dir
    none_dir = BASE / f"ckpt-{LABEL}-none"
    none_dir.mkdir(parents=True)
    fail_case("vit/no-checkpoint-message", "papers.vit", ["predict", good, "--out", WORK / "o7"],
              ("vit_model.pt", "--checkpoint", str(none_dir)), DL4CV_CHECKPOINT_DIR=str(none_dir))
    created = sorted(str(p.relative_to(none_dir)) for p in none_dir.rglob("*"))
    record(cat, "vit/no-checkpoint-no-new-folder", "silent" if created else "ok",
           f"created under the checkpoint dir: {created}" if created else "nothing created")
    # 9. damaged checkpoint, 10. hostile export, 11. text file named .png, 12. only a truncated PNG
    bad = WORK / "vit_truncated.pt"
    bad.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    fail_case("vit/truncated---checkpoint", "papers.vit", ["predict", good, "--checkpoint", bad, "--out", WORK / "o9"],
              (str(bad),), file=True)
    marker = WORK / "MARK_cli_export"
    evil = rewrite_zip(export, WORK / "vit_evil.pt2", pickle_entry(marker))
    fail_case("vit/hostile---export", "papers.vit", ["predict", good, "--export", evil, "--out", WORK / "o10"],
              (str(evil),), file=True, marker=marker)
    fail_case("vit/text-file-as-png", "papers.vit", ["predict", text_png, "--checkpoint", ckpt, "--out", WORK / "o11"],
              (str(text_png), text_png.name), file=True)
    fail_case("detr/only-truncated-png", "papers.detr",
              ["predict", trunc, "--checkpoint", dckpt, "--out", WORK / "o12"], (str(trunc), trunc.name), file=True)


if __name__ == "__main__":
    t0 = time.time()
    for part in (cat_checkpoints, cat_exports, cat_functions, cat_cli):
        try:
            part()
        except Exception:  # noqa: BLE001 - a broken setup must not hide the other categories
            print(f"[{LABEL}] SETUP FAILURE in {part.__name__}:\n{traceback.format_exc()}", flush=True)
            record(part.__name__, f"{part.__name__}/SETUP", "unclear", traceback.format_exc().splitlines()[-1])
    (BASE / f"results-{LABEL}.json").write_text(json.dumps(RESULTS, indent=1))
    print(f"[{LABEL}] {len(RESULTS)} attempts in {time.time() - t0:.0f} s -> {BASE / f'results-{LABEL}.json'}")
