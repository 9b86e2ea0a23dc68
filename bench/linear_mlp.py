"""A2/A3 on the full Fashion-MNIST: our hand-written classifiers beside scikit-learn.

    python bench/linear_mlp.py                      # every pair; about 30 minutes on 2 cores
    python bench/linear_mlp.py --only svm softmax   # some pairs only
    python bench/linear_mlp.py --no-sklearn         # ours only (the peers' figures take most of the time)
    python bench/linear_mlp.py --speed-only         # naive vs vectorised losses only

One split for everybody: the 60 000 training images minus the last 5 000
(validation) train every model; the 10 000 test images score it.  Pixels in
[0, 1] minus the mean training image, flattened (our linear models add a bias
column; scikit-learn fits its own intercept).  Our hyper-parameters (``OURS``
below) were chosen on the validation split, never on the test set; the peers
run with scikit-learn's defaults except where noted.  "train s" is the wall
time of fitting, prediction excluded; every library uses every core.

Also measured: how much faster the vectorised SVM and softmax losses are than
their naive loops.  Prints tables; asserts nothing.
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

from A2_linear import linear_classifier as lc
from A2_linear import two_layer_net as tln
from A3_fc_cnn import fully_connected_networks as fcn
from helpers.datasets import load_fashion_mnist, preprocess_dataset
from helpers.solver import Solver

NUM_VAL = 5000

#: Our settings, chosen on the validation split (see each notebook's search).
OURS = {
    "svm": {"learning_rate": 0.3, "reg": 1e-4, "num_iters": 5000, "batch_size": 200, "lr_decay": 0.8},
    "softmax": {"learning_rate": 3.0, "reg": 1e-4, "num_iters": 5000, "batch_size": 200, "lr_decay": 0.8},
    "two-layer": {"hidden_size": 512, "learning_rate": 0.2, "learning_rate_decay": 0.9, "reg": 1e-4,
                  "num_iters": 9000, "batch_size": 200, "momentum": 0.9, "std": 1e-2},
    "fc-net": {"hidden_dims": [512, 256], "dropout": 0.2, "reg": 0.0, "weight_scale": 5e-2,
               "learning_rate": 1e-3, "lr_decay": 0.9, "num_epochs": 30, "batch_size": 128},
}

#: Which peer each of our models is compared with.
PEERS = {"svm": "LinearSVC", "softmax": "LogisticRegression", "two-layer": "MLPClassifier(100)",
         "fc-net": "MLPClassifier(100)"}


def load(dtype=torch.float32) -> dict:
    """The shared split: ``X_train (55000, 784)``, ``X_val (5000, 784)``, ``X_test (10000, 784)`` and labels."""
    x_train, y_train, x_test, y_test = load_fashion_mnist()
    return preprocess_dataset(x_train, y_train, x_test, y_test, validation_ratio=NUM_VAL / len(x_train),
                              dtype=dtype)


def with_bias(data: dict) -> dict:
    """``data`` with a column of ones appended to every ``X_*`` (the bias trick)."""
    return {k: torch.cat([v, torch.ones(len(v), 1, dtype=v.dtype)], 1) if k.startswith("X_") else v
            for k, v in data.items()}


def accuracy(y_pred, y) -> float:
    return (torch.as_tensor(y_pred) == y).double().mean().item()


def timed(fit):
    """Run ``fit()``; return its result and the seconds it took."""
    start = time.perf_counter()
    result = fit()
    return result, time.perf_counter() - start


# ----------------------------------------------------------------------------- ours


def ours_linear(name: str, data: dict) -> dict:
    s = OURS[name]
    data = with_bias(data)
    model = lc.LinearSVM() if name == "svm" else lc.Softmax()
    torch.manual_seed(0)
    _, seconds = timed(lambda: model.train(data["X_train"], data["y_train"], s["learning_rate"], s["reg"],
                                           s["num_iters"], s["batch_size"], lr_decay=s["lr_decay"]))
    return {"seconds": seconds, "val": accuracy(model.predict(data["X_val"]), data["y_val"]),
            "test": accuracy(model.predict(data["X_test"]), data["y_test"])}


def ours_two_layer(data: dict) -> dict:
    s = OURS["two-layer"]
    torch.manual_seed(0)
    net = tln.TwoLayerNet(data["X_train"].shape[1], s["hidden_size"], 10, std=s["std"])
    _, seconds = timed(lambda: net.train(
        data["X_train"], data["y_train"], data["X_val"], data["y_val"], learning_rate=s["learning_rate"],
        learning_rate_decay=s["learning_rate_decay"], reg=s["reg"], num_iters=s["num_iters"],
        batch_size=s["batch_size"], momentum=s["momentum"]))
    return {"seconds": seconds, "val": accuracy(net.predict(data["X_val"]), data["y_val"]),
            "test": accuracy(net.predict(data["X_test"]), data["y_test"])}


def ours_fc_net(data: dict) -> dict:
    s = OURS["fc-net"]
    torch.manual_seed(0)
    model = fcn.FullyConnectedNet(s["hidden_dims"], input_dim=data["X_train"].shape[1], num_classes=10,
                                  dropout=s["dropout"], reg=s["reg"], weight_scale=s["weight_scale"])
    solver = Solver(model, data, update_rule=fcn.adam, optim_config={"learning_rate": s["learning_rate"]},
                    lr_decay=s["lr_decay"], num_epochs=s["num_epochs"], batch_size=s["batch_size"],
                    num_train_samples=1000, verbose=False, seed=0)
    _, seconds = timed(lambda: solver.train(return_best_params=True))
    return {"seconds": seconds, "val": solver.check_accuracy(data["X_val"], data["y_val"]),
            "test": solver.check_accuracy(data["X_test"], data["y_test"])}


def ours(name: str, data: dict) -> dict:
    if name in ("svm", "softmax"):
        return ours_linear(name, data)
    return ours_two_layer(data) if name == "two-layer" else ours_fc_net(data)


# ----------------------------------------------------------------------------- peers


def peer(name: str, data: dict) -> dict:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.svm import LinearSVC

    models = {"LinearSVC": lambda: LinearSVC(random_state=0),
              "LogisticRegression": lambda: LogisticRegression(max_iter=1000),
              "MLPClassifier(100)": lambda: MLPClassifier(hidden_layer_sizes=(100,), random_state=0)}
    model = models[name]()
    X, y = data["X_train"].numpy(), data["y_train"].numpy()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        _, seconds = timed(lambda: model.fit(X, y))
    note = "did not converge" if any(issubclass(w.category, ConvergenceWarning) for w in caught) else ""
    return {"seconds": seconds, "val": accuracy(model.predict(data["X_val"].numpy()), data["y_val"]),
            "test": accuracy(model.predict(data["X_test"].numpy()), data["y_test"]), "note": note}


# ----------------------------------------------------------------------------- speed of the losses


def loss_speed(repeats: int = 3) -> list[tuple[str, float, float]]:
    """(loss, naive seconds, vectorised seconds) at N=500, D=785, C=10 (float32, the best of ``repeats``)."""
    torch.manual_seed(0)
    X, y = torch.randn(500, 785), torch.randint(0, 10, (500,))
    W = 1e-4 * torch.randn(785, 10)

    def best_time(loss_fn, times: int) -> float:
        return min(timed(lambda: loss_fn(W, X, y, 1e-3))[1] for _ in range(times))

    return [(label, best_time(naive, repeats), best_time(vectorized, 20 * repeats))
            for label, naive, vectorized in (("svm", lc.svm_loss_naive, lc.svm_loss_vectorized),
                                             ("softmax", lc.softmax_loss_naive, lc.softmax_loss_vectorized))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(OURS), default=list(OURS))
    parser.add_argument("--no-sklearn", action="store_true", help="skip the scikit-learn peers")
    parser.add_argument("--speed-only", action="store_true", help="only time naive vs vectorised losses")
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"\n{'loss':8} {'naive ms':>9} {'vectorised ms':>14} {'speed-up':>9}")
    for label, slow, fast in loss_speed():
        print(f"{label:8} {1000 * slow:9.1f} {1000 * fast:14.3f} {slow / fast:8.0f}x")
    if args.speed_only:
        return

    data = load()
    print(f"\nFashion-MNIST: {len(data['y_train'])} train / {len(data['y_val'])} val / "
          f"{len(data['y_test'])} test, same split for every model")
    print(f"{'model':10} {'method':20} {'val acc':>8} {'test acc':>9} {'train s':>8}  note")
    peers_done: dict[str, dict] = {}
    for name in args.only:
        rows = [("ours", ours(name, data))]
        if not args.no_sklearn:
            peer_name = PEERS[name]
            if peer_name not in peers_done:
                peers_done[peer_name] = peer(peer_name, data)
            rows.append((peer_name, peers_done[peer_name]))
        for method, r in rows:
            print(f"{name:10} {method:20} {r['val']:8.4f} {r['test']:9.4f} {r['seconds']:8.1f}  {r.get('note', '')}",
                  flush=True)


if __name__ == "__main__":
    main()
