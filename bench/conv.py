"""A3: how fast are our hand-written convolution layers?  Three measurements, one run.

    python bench/conv.py              # everything; about a minute
    python bench/conv.py --quick      # fewer repeats, smaller naive/epoch parts (a smoke run)
    python bench/conv.py --threads 1  # pin torch to one thread (default: every core)

1. ``FastConv`` forward + backward against ``F.conv2d`` with autograd on the
   shapes a CIFAR-10 network uses (3x3, pad 1, float32, batch 128).  Both sides
   do the same work: the reference's input requires grad, so it computes
   ``dx``, ``dw`` and ``db`` like ours.  Each side gets its upstream gradient in
   the memory layout of its own output (as autograd or our next layer hands it
   over): ``F.conv2d`` returns NCHW; ``FastConv`` returns an NCHW-shaped view of
   a channels-last buffer.  Runs alternate (ours, reference, ours, ...) and the
   medians are compared, so a busy machine slows both alike.  The outputs and
   gradients are also compared with the reference.  A third column times im2col's
   three matrix products alone, a chunk at a time on matrices that stay in the cache
   (``im2col_products``): the floor of that method here.
2. ``FastConv`` against the loop version ``Conv`` (forward + backward) on a
   small layer, and ``FastMaxPool`` against ``MaxPool``.
3. Training time: the same ``DeepConvNet`` (28x28x1 input, filters
   [32, 32, 64, 64], pools after layers 2 and 4, batch norm) built from our
   layers with our Adam, and built from ``torch.nn`` with ``torch.optim.Adam``;
   first layer by layer (each block's convolution alone, then the whole
   conv - batch norm - ReLU - pool block, forward + backward on the block's
   real input, stored as each network stores it: channels-last for ours,
   NCHW for torch.nn; the last layer with the loss; the Adam update), then the
   median time of one whole update on a batch of 128, and the time of one
   epoch of Fashion-MNIST's 55 000 training images that implies; the whole
   update also for the notebook's final network ([32, 64, 64], pools after
   layers 1 and 2).

Prints tables; asserts nothing (tests/test_convolutional_networks.py checks
correctness).  Timing is the median of the repeats (wall clock); the ratio is ours / reference.
The whole step is also timed in CPU time of the process, which a busy machine disturbs less.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from A3_fc_cnn import convolutional_networks as cnn
from A3_fc_cnn.fully_connected_networks import Linear, adam, softmax_loss

#: (N, C, H, W, F): CIFAR-10 network shapes, plus the second layer of a Fashion-MNIST net.
CONV_SHAPES = [(128, 3, 32, 32, 64), (128, 64, 16, 16, 128), (128, 128, 8, 8, 256), (128, 32, 28, 28, 32)]
#: The DeepConvNet of part 3: the four-layer network the speed work was measured on, layer by layer.
NET = {"input_dims": (1, 28, 28), "num_filters": [32, 32, 64, 64], "max_pools": [1, 3], "batchnorm": True}
#: The notebook's final network (create_convolutional_solver_instance; chosen in bench/convnet_recipe.py):
#: its whole step is timed too.
FINAL_NET = {"input_dims": (1, 28, 28), "num_filters": [32, 64, 64], "max_pools": [0, 1], "batchnorm": True}
CONV_PARAM = {"stride": 1, "pad": 1}


def alternate(fns: dict, repeats: int) -> dict:
    """Call every function of ``fns`` once per round, ``repeats`` rounds after one warm-up round.

    Returns:
        name -> median seconds (wall clock).
    """
    return alternate_clocks(fns, repeats)[0]


def alternate_clocks(fns: dict, repeats: int) -> tuple[dict, dict]:
    """:func:`alternate`, timed by two clocks at once.

    Returns:
        name -> median wall-clock seconds, and name -> median CPU seconds of this process
        (``time.process_time``).  On a machine busy with other work the wall clock also counts the
        time this process waited for a core; its CPU time does not.
    """
    wall, cpu = {name: [] for name in fns}, {name: [] for name in fns}
    for round_ in range(repeats + 1):
        for name, fn in fns.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            if round_:
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
    return ({name: statistics.median(ts) for name, ts in wall.items()},
            {name: statistics.median(ts) for name, ts in cpu.items()})


def max_rel_error(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """``max |ours - ref| / max |ref|``: float32 round-off is about 1e-6."""
    return ((ours - ref).abs().max() / ref.abs().max().clamp_min(1e-30)).item()


# ----------------------------------------------------------------------------- 1. FastConv vs F.conv2d


def conv_vs_torch(shape, repeats: int) -> dict:
    N, C, H, W, Fo = shape
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(N, C, H, W, generator=gen)
    w = torch.randn(Fo, C, 3, 3, generator=gen) * (2 / (9 * C)) ** 0.5
    b = torch.randn(Fo, generator=gen)
    out, cache = cnn.FastConv.forward(x, w, b, CONV_PARAM)
    dout = torch.randn(out.shape, generator=gen).to(memory_format=torch.channels_last)
    dout = dout if dout.stride() == out.stride() else dout.contiguous()
    dx, dw, db = cnn.FastConv.backward(dout, cache)

    xr, wr, br = (t.clone().requires_grad_() for t in (x, w, b))
    ref = F.conv2d(xr, wr, br, padding=1)
    dref = dout.contiguous()
    ref.backward(dref)
    error = max(max_rel_error(a, r) for a, r in ((out, ref.detach()), (dx, xr.grad), (dw, wr.grad), (db, br.grad)))

    def ours():
        o, c = cnn.FastConv.forward(x, w, b, CONV_PARAM)
        cnn.FastConv.backward(dout, c)

    def reference():
        xr.grad = wr.grad = br.grad = None
        F.conv2d(xr, wr, br, padding=1).backward(dref)

    fns = {"ours": ours, "torch": reference}
    # the floor below is that of FastConv's own products: dx as a convolution (F <= C), or Winograd's
    # layers (which beat it); a first layer (C < F) computes dx another way
    if Fo <= C or C >= cnn.WINOGRAD_MIN_CHANNELS:  # every shape here is 3x3, stride 1, with an even output
        fns["products"] = im2col_products(shape, gen)
    t = alternate(fns, repeats)
    gflop = 3 * 2 * N * H * W * Fo * C * 9 / 1e9
    return {"shape": f"{N}x{C}x{H}x{W} -> {Fo}", "ours": t["ours"], "torch": t["torch"],
            "products": t.get("products"), "ratio": t["ours"] / t["torch"], "gflops": gflop / t["ours"],
            "error": error}


def im2col_products(shape, gen: torch.Generator):
    """The three matrix products of an im2col convolution of ``shape`` (3x3, pad 1), and nothing else.

    Forward ``(n*H*W, 9C) @ (9C, F)``, ``dw``: ``(F, n*H*W) @ (n*H*W, 9C)``, ``dx`` as ``FastConv``
    computes it, a convolution of ``dout``: ``(n*H*W, 9F) @ (9F, C)``, for each of ``FastConv``'s
    chunks of ``n`` images, on one chunk's matrices made once (so they stay in the cache).  No windows
    are copied, no padding, no layout changes: the time an im2col convolution cannot go below on this
    machine, whatever else it does better.
    """
    N, C, H, W, Fo = shape
    per_chunk = max(1, cnn.FASTCONV_CHUNK_BYTES["cpu"] // (H * W * 9 * C * 4))  # images: FastConv's chunks
    chunks = [slice(start, min(N, start + per_chunk)) for start in range(0, N, per_chunk)]
    M = per_chunk * H * W
    cols, w_mat = torch.randn(M, 9 * C, generator=gen), torch.randn(9 * C, Fo, generator=gen)
    dout_cols, w_flip = torch.randn(M, 9 * Fo, generator=gen), torch.randn(9 * Fo, C, generator=gen)
    dout = dout_cols[:, :Fo].contiguous()
    out, dw_t, dx = torch.empty(M, Fo), torch.zeros(9 * C, Fo), torch.empty(M, C)

    def products():
        for chunk in chunks:
            rows = (chunk.stop - chunk.start) * H * W
            torch.mm(cols[:rows], w_mat, out=out[:rows])
            dw_t.addmm_(cols[:rows].T, dout[:rows])
            torch.mm(dout_cols[:rows], w_flip, out=dx[:rows])

    return products


# ----------------------------------------------------------------------------- 2. fast vs naive


def fast_vs_naive(repeats: int, quick: bool) -> list[dict]:
    gen = torch.Generator().manual_seed(1)
    N = 4 if quick else 16
    x = torch.randn(N, 16, 16, 16, generator=gen)
    w = torch.randn(16, 16, 3, 3, generator=gen)
    b = torch.randn(16, generator=gen)
    pool = {"pool_height": 2, "pool_width": 2, "stride": 2}
    rows = []

    def conv(layer):
        def run():
            out, cache = layer.forward(x, w, b, CONV_PARAM)
            layer.backward(torch.ones_like(out), cache)
        return run

    def maxpool(layer):
        def run():
            out, cache = layer.forward(x, pool)
            layer.backward(torch.ones_like(out), cache)
        return run

    for what, naive, fast in (("conv 3x3", conv(cnn.Conv), conv(cnn.FastConv)),
                              ("max-pool 2x2", maxpool(cnn.MaxPool), maxpool(cnn.FastMaxPool))):
        t = alternate({"naive": naive, "fast": fast}, max(1, repeats // 3))
        rows.append({"what": f"{what}, x {N}x16x16x16", "naive": t["naive"], "fast": t["fast"],
                     "speedup": t["naive"] / t["fast"]})
    return rows


# ----------------------------------------------------------------------------- 3. one epoch, ours vs torch.nn


def torch_net(model: cnn.DeepConvNet, spec: dict = NET) -> nn.Sequential:
    """The same architecture as ``model`` (built from ``spec``) in ``torch.nn``, with a copy of its parameters."""
    layers, p = [], model.params
    num_conv = len(spec["num_filters"])
    in_channels = spec["input_dims"][0]
    for i in range(num_conv):
        out_channels = spec["num_filters"][i]
        conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        bn = nn.BatchNorm2d(out_channels, eps=1e-5, momentum=0.1)
        with torch.no_grad():
            conv.weight.copy_(p[f"W{i + 1}"])
            conv.bias.copy_(p[f"b{i + 1}"])
            bn.weight.copy_(p[f"gamma{i + 1}"])
            bn.bias.copy_(p[f"beta{i + 1}"])
        layers += [conv, bn, nn.ReLU()]
        if i in spec["max_pools"]:
            layers.append(nn.MaxPool2d(2))
        in_channels = out_channels
    last = nn.Linear(p[f"W{num_conv + 1}"].shape[0], p[f"W{num_conv + 1}"].shape[1])
    with torch.no_grad():
        last.weight.copy_(p[f"W{num_conv + 1}"].T)
        last.bias.copy_(p[f"b{num_conv + 1}"])
    return nn.Sequential(*layers, nn.Flatten(), last)


def epoch_time(repeats: int, spec: dict = NET) -> dict:
    torch.manual_seed(2)
    model = cnn.DeepConvNet(**spec, weight_scale="kaiming", reg=0.0, dtype=torch.float32)
    net = torch_net(model, spec)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    configs = {name: {"learning_rate": 1e-3} for name in model.params}
    X = torch.randn(128, *spec["input_dims"])
    y = torch.randint(0, 10, (128,))
    with torch.no_grad():
        ours_loss = model.loss(X, y)[0]
        ref_loss = F.cross_entropy(net(X), y)

    def ours_step():
        loss, grads = model.loss(X, y)
        for name, w in model.params.items():
            model.params[name], configs[name] = adam(w, grads[name], configs[name])

    def torch_step():
        optimizer.zero_grad()
        F.cross_entropy(net(X), y).backward()
        optimizer.step()

    t, cpu = alternate_clocks({"ours": ours_step, "torch": torch_step}, repeats)
    steps = 55000 // 128
    return {"ours": t["ours"], "torch": t["torch"], "ratio": t["ours"] / t["torch"],
            "ours_cpu": cpu["ours"], "torch_cpu": cpu["torch"],
            "ours_epoch": t["ours"] * steps, "torch_epoch": t["torch"] * steps,
            "loss_gap": abs(float(ours_loss) - float(ref_loss))}


def layer_times(repeats: int) -> list[dict]:
    """Where the training step's time goes: forward + backward of each block of ``NET``, ours against
    ``torch.nn`` with autograd on the same input and upstream gradient, alternating; then the last layer
    with the loss, and the Adam update of every parameter.

    Returns:
        one dict per row: ``what``, ``ours``, ``torch`` (median seconds).
    """
    torch.manual_seed(3)
    model = cnn.DeepConvNet(**NET, weight_scale="kaiming", reg=0.0, dtype=torch.float32)
    net = torch_net(model)
    p, gen = model.params, torch.Generator().manual_seed(4)
    x = torch.randn(128, *NET["input_dims"], generator=gen)
    y = torch.randint(0, 10, (128,), generator=gen)
    modules, rows = list(net), []
    for i, _ in enumerate(NET["num_filters"]):
        pool = i in NET["max_pools"]
        block = nn.Sequential(*modules[:4 if pool else 3])
        modules = modules[len(block):]
        args = (p[f"W{i + 1}"], p[f"b{i + 1}"], p[f"gamma{i + 1}"], p[f"beta{i + 1}"], CONV_PARAM, {"mode": "train"})
        sandwich = cnn.Conv_BatchNorm_ReLU_Pool if pool else cnn.Conv_BatchNorm_ReLU
        extra = ({"pool_height": 2, "pool_width": 2, "stride": 2},) if pool else ()
        out, _ = sandwich.forward(x, *args, *extra)
        dout = torch.randn(out.shape, generator=gen).contiguous(memory_format=torch.channels_last)
        conv_out, _ = cnn.FastConv.forward(x, *args[:2], CONV_PARAM)
        dconv = torch.randn(conv_out.shape, generator=gen).contiguous(memory_format=torch.channels_last)
        # torch.nn gets what it gets in its own network: NCHW tensors (ours are stored channels-last); the
        # network's input needs no gradient, the others do
        x_ref = x.contiguous().requires_grad_(i > 0)
        dconv_ref, dout_ref = dconv.contiguous(), dout.contiguous()

        def ours_conv(x=x, args=args, dconv=dconv):
            cnn.FastConv.backward(dconv, cnn.FastConv.forward(x, *args[:2], CONV_PARAM)[1])

        def torch_conv(x_ref=x_ref, conv=block[0], dconv=dconv_ref):
            x_ref.grad = None
            conv.zero_grad()
            conv(x_ref).backward(dconv)

        def ours_block(x=x, args=args, extra=extra, dout=dout, sandwich=sandwich):
            sandwich.backward(dout, sandwich.forward(x, *args, *extra)[1])

        def torch_block(x_ref=x_ref, block=block, dout=dout_ref):
            x_ref.grad = None
            block.zero_grad()
            block(x_ref).backward(dout)

        t = alternate({"ours conv": ours_conv, "torch conv": torch_conv, "ours": ours_block, "torch": torch_block},
                      repeats)
        shape = f"{x.shape[1]}->{out.shape[1]} {x.shape[2]}x{x.shape[3]}"
        rows.append({"what": f"conv {shape}", "ours": t["ours conv"], "torch": t["torch conv"]})
        rows.append({"what": f"block: + bn, relu{', pool' if pool else ''}", "ours": t["ours"], "torch": t["torch"]})
        x = out
    L = model.num_layers
    x_ref = x.contiguous().requires_grad_()
    head = nn.Sequential(*modules)

    def ours_head():
        scores, cache = Linear.forward(x, p[f"W{L}"], p[f"b{L}"])
        Linear.backward(softmax_loss(scores, y)[1], cache)

    def torch_head():
        x_ref.grad = None
        head.zero_grad()
        F.cross_entropy(head(x_ref), y).backward()

    grads = {name: torch.randn(w.shape, generator=gen) for name, w in p.items()}
    configs = {name: {"learning_rate": 1e-3} for name in p}
    for param in net.parameters():
        param.grad = torch.randn(param.shape, generator=gen)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)

    def ours_adam():
        for name, w in p.items():
            p[name], configs[name] = adam(w, grads[name], configs[name])

    t = alternate({"ours head": ours_head, "torch head": torch_head, "ours adam": ours_adam,
                   "torch adam": optimizer.step}, repeats)
    rows.append({"what": "linear + softmax loss", "ours": t["ours head"], "torch": t["torch head"]})
    rows.append({"what": "Adam update", "ours": t["ours adam"], "torch": t["torch adam"]})
    return rows


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and smaller naive/epoch parts")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: every core)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds per measurement (default 15)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = args.repeats or (3 if args.quick else 15)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, {repeats} rounds, medians\n")

    print("1. FastConv forward+backward vs F.conv2d with autograd (3x3, pad 1)")
    print("   products: im2col's three matrix products alone, a chunk at a time, timed in the same rounds (the")
    print("   floor of an im2col convolution here; Winograd's layers, 3x3 stride 1 with 64+ channels, make 2.25x")
    print("   fewer multiplications; '-': a first layer, whose dx FastConv computes another way)")
    print(f"{'shape':>24} {'ours ms':>9} {'torch ms':>9} {'ours/torch':>11} {'ours GFLOP/s':>13} {'max rel err':>12} "
          f"{'products ms':>12} {'products/torch':>15}")
    for shape in CONV_SHAPES:
        r = conv_vs_torch(shape, repeats)
        floor = ("-", "-") if r["products"] is None else (f"{r['products'] * 1e3:.1f}",
                                                          f"{r['products'] / r['torch']:.2f}x")
        print(f"{r['shape']:>24} {r['ours'] * 1e3:9.1f} {r['torch'] * 1e3:9.1f} {r['ratio']:10.2f}x "
              f"{r['gflops']:13.0f} {r['error']:12.1e} {floor[0]:>12} {floor[1]:>15}")

    print("\n2. fast vs naive layers (forward+backward)")
    print(f"{'layer':>30} {'naive ms':>10} {'fast ms':>9} {'speed-up':>9}")
    for r in fast_vs_naive(repeats, args.quick):
        print(f"{r['what']:>30} {r['naive'] * 1e3:10.1f} {r['fast'] * 1e3:9.2f} {r['speedup']:8.0f}x")

    print("\n3. one training step of DeepConvNet", NET["num_filters"], "batch 128, 28x28x1, Adam")
    print("   per layer, forward+backward (a block's row: conv, batch norm, ReLU and pool together)")
    print(f"{'':>24} {'ours ms':>9} {'torch ms':>9} {'ours/torch':>11}")
    for r in layer_times(max(3, repeats // 2)):
        print(f"{r['what']:>24} {r['ours'] * 1e3:9.1f} {r['torch'] * 1e3:9.1f} {r['ours'] / r['torch']:10.2f}x")
    for name, spec in (("this network", NET), ("the notebook's final network", FINAL_NET)):
        print(f"   the whole step, {name}: filters {spec['num_filters']}, pools after {spec['max_pools']}")
        r = epoch_time(max(3, repeats // 2), spec)
        print(f"{'':>12} {'step ms':>9} {'epoch s (55k)':>14}")
        print(f"{'ours':>12} {r['ours'] * 1e3:9.1f} {r['ours_epoch']:14.1f}")
        print(f"{'torch.nn':>12} {r['torch'] * 1e3:9.1f} {r['torch_epoch']:14.1f}")
        print(f"ours / torch.nn: {r['ratio']:.2f}x   (same initial loss within {r['loss_gap']:.1e})")
        print(f"in CPU time of this process: ours {r['ours_cpu'] * 1e3:.1f} ms, torch.nn {r['torch_cpu'] * 1e3:.1f} "
              f"ms, {r['ours_cpu'] / r['torch_cpu']:.2f}x   (the wall clock also counts waiting for a busy core)")


if __name__ == "__main__":
    main()
