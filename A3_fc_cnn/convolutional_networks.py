"""A3: convolutional networks, max pooling and batch normalization, written by hand (no autograd).

Names follow EECS 498/598 so course material applies unchanged.  Layers are
classes of static methods with the API of :mod:`A3_fc_cnn.fully_connected_networks`::

    out, cache = Conv.forward(x, w, b, conv_param)    # x (N, C, H, W), w (F, C, HH, WW), b (F,)
    dx, dw, db = Conv.backward(dout, cache)           # dout (N, F, H', W')

* ``Conv`` (loops over output positions, the readable version) and ``FastConv``
  (vectorised: im2col, one matrix product, col2im), with
  ``conv_param = {"stride": s, "pad": p}``: zero padding of ``p`` on all four
  sides, ``H' = 1 + (H + 2p - HH) // s``.  The filter must tile the padded
  input exactly: ``(H + 2p - HH) % s == 0``, likewise for the width;
* ``MaxPool`` (loops) and ``FastMaxPool`` (vectorised), with
  ``pool_param = {"pool_height": ph, "pool_width": pw, "stride": s}``; again the
  windows must tile the input, ``(H - ph) % s == 0``.  Where several entries of
  a window share the maximum, the gradient goes to the first of them in
  row-major order, as in ``torch.nn.functional.max_pool2d``;
* ``BatchNorm`` (``x (N, D)``) and ``SpatialBatchNorm`` (``x (N, C, H, W)``,
  statistics per channel), see :class:`BatchNorm` for ``bn_param``;
* "sandwiches" ``Conv_ReLU``, ``Conv_ReLU_Pool``, ``Linear_BatchNorm_ReLU``,
  ``Conv_BatchNorm_ReLU``, ``Conv_BatchNorm_ReLU_Pool`` built from the fast layers;
  their ``backward`` returns the gradients in the order of ``forward``'s arguments;
* ``kaiming_initializer`` and the models ``ThreeLayerConvNet`` and
  ``DeepConvNet``: ``params`` (a dict of tensors) and ``loss(X, y=None)``
  returning the scores ``(N, C)`` when ``y`` is None and ``(loss, grads)``
  otherwise; they train with :class:`helpers.solver.Solver`;
* ``find_overfit_parameters`` (for the network and run ``OVERFIT_NET`` /
  ``OVERFIT_SOLVER``) and ``create_convolutional_solver_instance``: the
  hyper-parameters you choose.

``Linear``, ``ReLU``, ``Linear_ReLU``, ``softmax_loss`` and ``adam`` come from
:mod:`A3_fc_cnn.fully_connected_networks`; input checks from :mod:`A3_fc_cnn.checks`,
saving from :mod:`A3_fc_cnn.model_files`.

Conventions used throughout:

* L2 regularisation adds ``reg * sum(W ** 2)`` over every weight, convolution
  filters included, but not over biases, ``gamma`` or ``beta``; its gradient is
  ``2 * reg * W``;
* the losses average over the ``N`` examples of the batch;
* batch normalization follows ``torch.nn.BatchNorm1d/2d``: in training the batch
  is normalised with its biased variance (divided by ``N``), while the running
  variance is updated with the unbiased one (divided by ``N - 1``).  Our
  ``momentum`` weighs the OLD running value (``running = momentum * running +
  (1 - momentum) * batch``), so our ``momentum = 0.9`` is torch's ``momentum=0.1``;
* shapes are always ``(N, C, H, W)``, but ``FastConv`` returns tensors STORED
  channels-last (``x.is_contiguous(memory_format=torch.channels_last)``): that is
  the layout its matrix product writes, and the next layer reads it without a
  copy; ``SpatialBatchNorm`` and ``FastMaxPool`` keep it.  Every layer accepts
  either layout; use ``reshape``, not ``view``, on their outputs.
"""

from __future__ import annotations

import math

import torch

from A3_fc_cnn.checks import (
    check_batchnorm,
    check_conv,
    check_data_dict,
    check_deep_conv_net,
    check_grad,
    check_images,
    check_kaiming,
    check_model_images,
    check_pool,
    check_spatial_batchnorm,
    check_three_layer_conv_net,
)
from A3_fc_cnn.fully_connected_networks import Linear, Linear_ReLU, ReLU, adam, softmax_loss
from A3_fc_cnn.model_files import SAVE_FORMAT, load_model, loaded_params, save_model
from helpers.datasets import random_flip_and_shift  # noqa: F401  (yours to use: the Solver's augment=)
from helpers.solver import Solver

__all__ = [
    "BatchNorm",
    "Conv",
    "Conv_BatchNorm_ReLU",
    "Conv_BatchNorm_ReLU_Pool",
    "Conv_ReLU",
    "Conv_ReLU_Pool",
    "DeepConvNet",
    "FastConv",
    "FastMaxPool",
    "Linear_BatchNorm_ReLU",
    "MaxPool",
    "OVERFIT_NET",
    "OVERFIT_SOLVER",
    "SpatialBatchNorm",
    "ThreeLayerConvNet",
    "create_convolutional_solver_instance",
    "find_overfit_parameters",
    "kaiming_initializer",
]


# --------------------------------------------------------------------------- convolution


class Conv:
    """Convolution (cross-correlation, as ``torch.nn.functional.conv2d``), written with loops.

    ``out[n, f, i, j] = b[f] + sum_{c, k, l} w[f, c, k, l] * x_pad[n, c, i*s + k, j*s + l]``
    where ``x_pad`` is ``x`` with ``pad`` zeros on each side and ``s`` the stride.
    """

    @staticmethod
    def forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, conv_param: dict):
        """Forward pass, one output position at a time.

        Args:
            x: ``(N, C, H, W)`` inputs.
            w: ``(F, C, HH, WW)`` filters.
            b: ``(F,)`` biases.
            conv_param: ``{"stride": int >= 1, "pad": int >= 0}``.

        Returns:
            out: ``(N, F, H', W')`` with ``H' = 1 + (H + 2 pad - HH) // stride``, ``W'`` likewise;
            cache: ``(x, w, b, conv_param)``.

        Raises:
            ValueError: bad shapes, or ``(H + 2 pad - HH)`` (or the width's) not divisible by the stride.

        Rule: loops over the output positions are fine (this is the readable version); nothing
        from ``torch.nn`` (no ``conv2d``, no ``unfold``), no autograd.  Hint: pad once, up front, into a
        zero tensor (or with ``torch.nn.functional.pad``, the one exception).
        """
        stride, pad, H_out, W_out = check_conv(x, w, b, conv_param)
        ### BEGIN SOLUTION
        N, C, H, W = x.shape
        F, _, HH, WW = w.shape
        x_pad = x.new_zeros((N, C, H + 2 * pad, W + 2 * pad))
        x_pad[:, :, pad:pad + H, pad:pad + W] = x
        w_flat = w.reshape(F, -1)
        out = x.new_empty((N, F, H_out, W_out))
        for i in range(H_out):
            for j in range(W_out):
                window = x_pad[:, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
                out[:, :, i, j] = window.reshape(N, -1) @ w_flat.T + b
        ### END SOLUTION
        cache = (x, w, b, conv_param)
        return out, cache

    @staticmethod
    def backward(dout: torch.Tensor, cache):
        """Backward pass.

        Args:
            dout: ``(N, F, H', W')`` upstream gradient.
            cache: ``(x, w, b, conv_param)`` from :meth:`forward`.

        Returns:
            dx: ``(N, C, H, W)``; dw: ``(F, C, HH, WW)``; db: ``(F,)``.

        Rule: as :meth:`forward` (loops fine; no ``conv2d``, no ``unfold``, no autograd).  Hint: every
        window's gradient adds into the padded ``dx``;
        cut the padding off at the end.
        """
        x, w, b, conv_param = cache
        stride, pad, H_out, W_out = check_conv(x, w, b, conv_param)
        check_grad(dout, "dout", (x.shape[0], w.shape[0], H_out, W_out), "the output (N, F, H', W')")
        ### BEGIN SOLUTION
        N, C, H, W = x.shape
        F, _, HH, WW = w.shape
        x_pad = x.new_zeros((N, C, H + 2 * pad, W + 2 * pad))
        x_pad[:, :, pad:pad + H, pad:pad + W] = x
        w_flat = w.reshape(F, -1)
        dx_pad = torch.zeros_like(x_pad)
        dw_flat = torch.zeros_like(w_flat)
        for i in range(H_out):
            for j in range(W_out):
                rows, cols = slice(i * stride, i * stride + HH), slice(j * stride, j * stride + WW)
                g = dout[:, :, i, j]  # (N, F)
                dw_flat += g.T @ x_pad[:, :, rows, cols].reshape(N, -1)
                dx_pad[:, :, rows, cols] += (g @ w_flat).reshape(N, C, HH, WW)
        dx = dx_pad[:, :, pad:pad + H, pad:pad + W].contiguous()
        dw = dw_flat.reshape(w.shape)
        db = dout.sum(dim=(0, 2, 3))
        ### END SOLUTION
        return dx, dw, db


#: How many bytes of window matrix FastConv builds at a time on the CPU.  A batch is cut into
#: chunks of images whose im2col matrix has about this size: it then stays in the processor's
#: cache between being written and being multiplied, instead of making a round trip through
#: memory (a CIFAR-10 layer's full matrix is ~75 MB).  Other devices take the batch whole.
FASTCONV_CHUNK_BYTES = {"cpu": 2 << 20}


def _fastconv_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """``x (N, C, H, W)`` as a contiguous channels-last ``(N, H + 2 pad, W + 2 pad, C)`` tensor,
    zero-padded.  With the channels innermost, each window row is one contiguous run of memory.
    (When ``pad == 0`` and ``x`` is already stored channels-last, this is a view, not a copy.)
    Rule: :class:`FastConv`'s (no loops here; nothing from ``torch.nn``)."""
    ### BEGIN SOLUTION
    N, C, H, W = x.shape
    x_nhwc = x.permute(0, 2, 3, 1)
    if pad == 0 and x_nhwc.is_contiguous():
        return x_nhwc
    x_pad = x.new_empty((N, H + 2 * pad, W + 2 * pad, C))
    x_pad[:, pad:pad + H, pad:pad + W] = x_nhwc
    # zeros on the border only: new_zeros would write every entry twice (activations do not fit in the cache,
    # so each pass over them is a round trip through memory)
    x_pad[:, :pad] = 0
    x_pad[:, pad + H:] = 0
    x_pad[:, :, :pad] = 0
    x_pad[:, :, pad + W:] = 0
    ### END SOLUTION
    return x_pad


def _fastconv_windows(x_pad: torch.Tensor, HH: int, WW: int, stride: int, H_out: int, W_out: int) -> torch.Tensor:
    """A strided VIEW ``(N, H', W', HH, WW, C)`` of the padded channels-last input
    ``x_pad (N, Hp, Wp, C)``: entry ``[n, i, j]`` is the window under output position
    ``(i, j)``.  No copy; ``x_pad`` must be contiguous.  Rule: no loops; not ``unfold``."""
    ### BEGIN SOLUTION
    N, _, _, C = x_pad.shape
    sN, sH, sW, sC = x_pad.stride()
    windows = x_pad.as_strided((N, H_out, W_out, HH, WW, C), (sN, stride * sH, stride * sW, sH, sW, sC))
    ### END SOLUTION
    return windows


def _fastconv_col2im_add(dcols: torch.Tensor, dx_pad: torch.Tensor, stride: int) -> None:
    """The adjoint of im2col: add every window's gradient back where the window was.

    Args:
        dcols: ``(n, H', W', HH, WW, C)``, the gradient of each window.
        dx_pad: ``(n, Hp, Wp, C)``, the padded channels-last input's gradient; updated in place.
            Where windows overlap, their gradients add up.
        stride: of the convolution.

    Rule: no loop over the output positions (one over the ``HH x WW`` filter taps is fine); not ``fold``.
    """
    ### BEGIN SOLUTION
    _, H_out, W_out, HH, WW, _ = dcols.shape
    for i in range(HH):  # one slice per filter tap: all windows' (i, j) entries at once
        for j in range(WW):
            rows = slice(i, i + stride * (H_out - 1) + 1, stride)
            cols = slice(j, j + stride * (W_out - 1) + 1, stride)
            dx_pad[:, rows, cols].add_(dcols[:, :, :, i, j])  # add_ on the view: `+=` would also copy it back
    ### END SOLUTION


def _fastconv_chunks(N: int, image_bytes: int, device: torch.device) -> list[slice]:
    """Slices of the batch ``range(N)``, each with at most ``FASTCONV_CHUNK_BYTES`` of window matrix
    (``image_bytes`` per image; at least one image per chunk)."""
    budget = FASTCONV_CHUNK_BYTES.get(device.type)
    per_chunk = N if budget is None else max(1, budget // max(1, image_bytes))
    return [slice(start, min(N, start + per_chunk)) for start in range(0, N, per_chunk)]


# --------------------------------------------------------------------------- Winograd's convolution (optional)

#: FastConv computes a 3x3, stride-1 convolution with Winograd's F(2x2, 3x3) (below) when the output's
#: height and width are even and the input has at least this many channels.  With fewer, its 16 products
#: are too thin to pay: on the CPU we measured (``python bench/conv.py``, one and two threads), 32-channel
#: layers ran no faster than with im2col, or slower.
WINOGRAD_MIN_CHANNELS = 64

# F(2, 3) in one dimension: two outputs of a 3-tap filter g from 4 inputs d, with 4 multiplications
# instead of 6:  y = AT @ ((G @ g) * (BT @ d)).
_WINOGRAD_BT = ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1))
_WINOGRAD_G = ((1, 0, 0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0, 0, 1))
_WINOGRAD_AT = ((1, 1, 1, 0), (0, 1, -1, -1))


def _winograd_applies(C: int, HH: int, WW: int, stride: int, H_out: int, W_out: int) -> bool:
    """Whether :class:`FastConv` takes Winograd's way (see :data:`WINOGRAD_MIN_CHANNELS`)."""
    return (HH, WW, stride) == (3, 3, 1) and H_out % 2 == 0 and W_out % 2 == 0 and C >= WINOGRAD_MIN_CHANNELS


def _winograd_transforms(dtype: torch.dtype, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(B, G, A)``: F(2x2, 3x3)'s transforms as matrices on flattened (row-major) tiles.

    ``B (16, 16)`` maps a 4x4 input tile to its 16 transformed entries, ``G (16, 9)`` a 3x3 filter to
    its 16, ``A (4, 16)`` the 16 products back to the 2x2 output tile.  In 2-D each transform is
    applied along the rows and along the columns (``BT @ d @ BT.T`` on a 4x4 tile ``d``), which on the
    flattened tile is the Kronecker product of the 1-D matrix with itself.
    Rule: the course's (nothing from ``torch.nn``); ``torch.kron`` is fine.
    """
    ### BEGIN SOLUTION
    bt, g, at = (torch.tensor(m, dtype=dtype, device=device) for m in (_WINOGRAD_BT, _WINOGRAD_G, _WINOGRAD_AT))
    return torch.kron(bt, bt), torch.kron(g, g), torch.kron(at, at)
    ### END SOLUTION


def _winograd_filters(w: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """The transformed filters ``U (16, C, F)`` of ``w (F, C, 3, 3)``: ``U[k]`` is entry ``k`` of every
    transformed filter, as the ``(C, F)`` matrix that multiplies the tiles' entry ``k``."""
    ### BEGIN SOLUTION
    F, C = w.shape[:2]
    return (G @ w.permute(2, 3, 1, 0).reshape(9, C * F)).view(16, C, F)
    ### END SOLUTION


def _winograd_input(x_pad: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """The transformed input tiles ``(16, n*th*tw, C)`` of ``x_pad (n, 2*th + 2, 2*tw + 2, C)``
    (channels-last, contiguous): tile ``(t, u)`` is the 4x4 patch at ``(2t, 2u)``, under output
    rows ``2t, 2t+1`` and columns ``2u, 2u+1``; neighbouring tiles overlap by 2 rows or columns."""
    ### BEGIN SOLUTION
    n, Hp, Wp, C = x_pad.shape
    sN, sH, sW, sC = x_pad.stride()
    tiles = x_pad.as_strided((4, 4, n, (Hp - 2) // 2, (Wp - 2) // 2, C), (sH, sW, sN, 2 * sH, 2 * sW, sC))
    return (B @ tiles.reshape(16, -1)).view(16, -1, C)  # reshape copies the tiles: 4x the input, not im2col's 9x
    ### END SOLUTION


def _winograd_forward(x_pad: torch.Tensor, w: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> None:
    """Winograd's F(2x2, 3x3): write into ``out (N, H', W', F)`` the stride-1 convolution of ``x_pad
    (N, H' + 2, W' + 2, C)`` (padded, channels-last, contiguous) by ``w (F, C, 3, 3)``, plus ``b``;
    ``H'`` and ``W'`` even.

    Each 2x2 block of the output comes from the 4x4 input tile under it.  Transform every tile
    (``B``) and every filter (``G``); multiply them entry by entry, summing over the channels -- for
    each of the 16 entries ONE matrix product ``(tiles, C) @ (C, F)``; transform back (``A``).  That
    is 16 multiply-adds per channel pair for 4 outputs, where im2col spends 9 per output: 2.25 times
    fewer.  Rule: as :class:`FastConv`'s.
    """
    ### BEGIN SOLUTION
    N, _, _, C = x_pad.shape
    _, H_out, W_out, F = out.shape
    B, G, A = _winograd_transforms(x_pad.dtype, x_pad.device)
    U = _winograd_filters(w, G)
    for chunk in _fastconv_chunks(N, H_out * W_out * 9 * C * x_pad.element_size(), x_pad.device):
        M = torch.bmm(_winograd_input(x_pad[chunk], B), U)  # (16, tiles, F)
        Y = (A @ M.view(16, -1)).view(2, 2, -1, H_out // 2, W_out // 2, F)  # (row, column in the block, n, ...)
        blocks = out[chunk].view(-1, H_out // 2, 2, W_out // 2, 2, F)
        torch.add(Y.permute(2, 3, 0, 4, 1, 5), b, out=blocks)
    ### END SOLUTION


def _winograd_backward(dout: torch.Tensor, x_pad: torch.Tensor, w: torch.Tensor):
    """``(dx_pad, dw)`` of :func:`_winograd_forward` for ``dout (N, H', W', F)`` (channels-last).

    Every step of the forward pass is linear, so the backward pass applies their transposes in
    reverse: ``dM = A.T @ dout``'s blocks; ``dU = V.T @ dM`` and ``dV = dM @ U.T`` (the 16 products);
    ``dw = G.T @ dU`` (the transpose of :func:`_winograd_filters`); the tiles' gradients ``B.T @ dV``,
    added back where the tiles were (they overlap).  ``V`` is rebuilt, not kept, as im2col's matrix is.
    Rule: as :class:`FastConv`'s.
    """
    ### BEGIN SOLUTION
    N, _, _, C = x_pad.shape
    _, H_out, W_out, F = dout.shape
    th, tw = H_out // 2, W_out // 2
    B, G, A = _winograd_transforms(x_pad.dtype, x_pad.device)
    U = _winograd_filters(w, G)
    dU = x_pad.new_zeros((16, C, F))
    dx_pad = x_pad.new_empty(x_pad.shape)
    for chunk in _fastconv_chunks(N, H_out * W_out * 9 * C * x_pad.element_size(), x_pad.device):
        dout_blocks = dout[chunk].reshape(-1, th, 2, tw, 2, F).permute(2, 4, 0, 1, 3, 5)  # (2, 2, n, th, tw, F)
        dM = (A.T @ dout_blocks.reshape(4, -1)).view(16, -1, F)
        dU.baddbmm_(_winograd_input(x_pad[chunk], B).transpose(1, 2), dM)
        d_tiles = (B.T @ torch.bmm(dM, U.transpose(1, 2)).view(16, -1)).view(4, 4, -1, th, tw, C)
        # tile (t, u) covers the 2x2 blocks (t..t+1, u..u+1) of dx_pad: its quarter (i, j) goes to block
        # (t + i, u + j), and each block sums the quarters of up to four tiles
        blocks = dx_pad[chunk].view(-1, th + 1, 2, tw + 1, 2, C)
        quarter = [[d_tiles[2 * i:2 * i + 2, 2 * j:2 * j + 2].permute(2, 3, 0, 4, 1, 5) for j in (0, 1)]
                   for i in (0, 1)]  # each (n, th, 2, tw, 2, C)
        blocks[:, :th, :, :tw] = quarter[0][0]
        blocks[:, th:] = 0
        blocks[:, :th, :, tw:] = 0
        blocks[:, 1:, :, :tw] += quarter[1][0]
        blocks[:, :th, :, 1:] += quarter[0][1]
        blocks[:, 1:, :, 1:] += quarter[1][1]
    dw = (G.T @ dU.view(16, C * F)).view(3, 3, C, F).permute(3, 2, 0, 1).contiguous()
    ### END SOLUTION
    return dx_pad, dw


class FastConv:
    """Convolution with :class:`Conv`'s API, vectorised.

    Every window of the padded input, stored channels-last, is copied into one row of a
    matrix ("im2col", ``(N*H'*W', HH*WW*C)``, read from a strided view), so the
    convolution is ONE matrix product with the ``(HH*WW*C, F)`` filter matrix.  The
    backward pass gets ``dw`` and the windows' gradients from two more products and
    adds the windows' gradients back into ``dx`` ("col2im").  With stride 1 (square
    filters, ``pad < HH``), ``dx`` is also a convolution: of ``dout``, padded by
    ``HH - 1 - pad``, with the filters flipped in space and their channel axes swapped.
    This solution takes that way when its window matrix is no larger (with "same"
    padding: no more filters than input channels); it needs no col2im.  For 3x3, stride-1
    layers with an even output and at least ``WINOGRAD_MIN_CHANNELS`` input channels it
    takes Winograd's F(2x2, 3x3) instead (:func:`_winograd_forward`): 2.25 times fewer
    multiplications.  Both are optional for yours.

    Two choices make it fast on a CPU:

    * the matrix is built and used a chunk of images at a time (see
      ``FASTCONV_CHUNK_BYTES``), and rebuilt in the backward pass rather than kept;
    * ``out`` and ``dx`` have the usual ``(N, C, H, W)`` shape but are stored
      channels-last (``torch.channels_last``): the product writes that layout
      directly, and the next layer's FastConv reads it without a copy.

    The cache is private to this class: use it only through :meth:`backward`.

    Rule: no loop over output positions (a loop over chunks of images is fine), nothing from
    ``torch.nn`` (no ``conv2d``, no ``unfold``), no autograd.  The helpers above it
    (``_fastconv_pad``, ``_fastconv_windows``, ``_fastconv_col2im_add``, and Winograd's) are one way
    to cut the work; they are optional, FastConv is what is tested.  (EECS 498 gives a FastConv built on
    ``torch.nn.Conv2d``; here you write it.)
    """

    @staticmethod
    def forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, conv_param: dict):
        """Forward pass; shapes as in :meth:`Conv.forward`.

        Returns:
            out: ``(N, F, H', W')``, stored channels-last; cache: for :meth:`backward` only.

        Rule: the class's (no loop over output positions, no ``conv2d``/``unfold``, no autograd).
        """
        stride, pad, H_out, W_out = check_conv(x, w, b, conv_param)
        ### BEGIN SOLUTION
        N, C, H, W = x.shape
        F, _, HH, WW = w.shape
        x_pad = _fastconv_pad(x, pad)
        out = x.new_empty((N, H_out, W_out, F))
        if _winograd_applies(C, HH, WW, stride, H_out, W_out):
            _winograd_forward(x_pad, w, b, out)
        else:
            windows = _fastconv_windows(x_pad, HH, WW, stride, H_out, W_out)
            w_mat = w.permute(0, 2, 3, 1).reshape(F, HH * WW * C)  # the columns' (HH, WW, C) order
            for chunk in _fastconv_chunks(N, H_out * W_out * w_mat.shape[1] * x.element_size(), x.device):
                cols = windows[chunk].reshape(-1, HH * WW * C)  # im2col: (n*H'*W', HH*WW*C), a copy
                torch.addmm(b, cols, w_mat.T, out=out[chunk].view(-1, F))
        out = out.permute(0, 3, 1, 2)  # (N, F, H', W'), channels-last in memory
        cache = (x.shape, x_pad, w, stride, pad)
        ### END SOLUTION
        return out, cache

    @staticmethod
    def backward(dout: torch.Tensor, cache):
        """Backward pass; returns ``dx, dw, db`` as :meth:`Conv.backward` (``dx`` channels-last).

        Rule: the class's (no loop over output positions, no ``conv2d``/``unfold``/``fold``, no autograd).
        """
        ### BEGIN SOLUTION
        x_shape, x_pad, w, stride, pad = cache
        N, C, H, W = x_shape
        F, _, HH, WW = w.shape
        H_out = (x_pad.shape[1] - HH) // stride + 1
        W_out = (x_pad.shape[2] - WW) // stride + 1
        check_grad(dout, "dout", (N, F, H_out, W_out), "the output (N, F, H', W')")
        if _winograd_applies(C, HH, WW, stride, H_out, W_out):
            dout_nhwc = dout.permute(0, 2, 3, 1)
            dx_pad, dw = _winograd_backward(dout_nhwc, x_pad, w)
            dx = dx_pad[:, pad:pad + H, pad:pad + W].permute(0, 3, 1, 2)
            if pad:
                dx = dx.contiguous(memory_format=torch.channels_last)
            return dx, dw, dout_nhwc.sum(dim=(0, 1, 2))
        dout_rows = dout.permute(0, 2, 3, 1).reshape(N, H_out * W_out, F)  # no copy if channels-last
        w_mat = w.permute(0, 2, 3, 1).reshape(F, HH * WW * C)
        windows = _fastconv_windows(x_pad, HH, WW, stride, H_out, W_out)
        dw_mat_t = w_mat.new_zeros(w_mat.shape[::-1])  # (HH*WW*C, F): dw_mat, transposed
        # dx: with stride 1 (square filters, pad < HH), dx is itself a convolution -- of dout, padded by
        # HH - 1 - pad, with the filters flipped and their two channel axes swapped.  Its window matrix is
        # (N*H*W, HH*WW*F) against the windows' gradients' (N*H'*W', HH*WW*C), and it needs no col2im:
        # the cheaper way when it has no more entries (F <= C with "same" padding, H' = H).
        as_convolution = stride == 1 and HH == WW and pad < HH and F * H * W <= C * H_out * W_out
        if as_convolution:
            dout_windows = _fastconv_windows(_fastconv_pad(dout, HH - 1 - pad), HH, WW, 1, H, W)
            w_flip = w.flip(2, 3).permute(2, 3, 0, 1).reshape(HH * WW * F, C)  # rows in (i, j, f) order
            dx_nhwc = x_pad.new_empty((N, H, W, C))
        else:
            dx_pad = torch.zeros_like(x_pad)
        for chunk in _fastconv_chunks(N, H_out * W_out * w_mat.shape[1] * x_pad.element_size(), x_pad.device):
            g = dout_rows[chunk].reshape(-1, F)  # (n*H'*W', F)
            cols = windows[chunk].reshape(-1, HH * WW * C)  # rebuilt: cheaper than keeping it
            # dw_mat += g.T @ cols, computed as its transpose: the same numbers, but the matrix library is much
            # slower at writing a product with few columns (a first layer's HH*WW*C = 9) than with few rows
            dw_mat_t.addmm_(cols.T, g)
            if as_convolution:
                torch.mm(dout_windows[chunk].reshape(-1, HH * WW * F), w_flip, out=dx_nhwc[chunk].view(-1, C))
                continue
            if w_mat.shape[1] < F:  # few window columns (a first layer): the transposed product is much faster
                dcols = (w_mat.T @ g.T).T.view(-1, H_out, W_out, HH, WW, C)  # a view of it, no copy
            else:
                dcols = (g @ w_mat).view(-1, H_out, W_out, HH, WW, C)
            _fastconv_col2im_add(dcols, dx_pad[chunk], stride)
        db = dout_rows.sum(dim=(0, 1))
        dw = dw_mat_t.T.reshape(F, HH, WW, C).permute(0, 3, 1, 2).contiguous()
        if as_convolution:
            dx = dx_nhwc.permute(0, 3, 1, 2)
        else:
            dx = dx_pad[:, pad:pad + H, pad:pad + W].permute(0, 3, 1, 2)
            if pad:
                dx = dx.contiguous(memory_format=torch.channels_last)
        ### END SOLUTION
        return dx, dw, db


# --------------------------------------------------------------------------- max pooling


class MaxPool:
    """Max pooling, written with loops: ``out[n, c, i, j] = max`` of ``x[n, c]`` over the window
    of ``pool_height x pool_width`` entries whose top-left corner is ``(i * stride, j * stride)``."""

    @staticmethod
    def forward(x: torch.Tensor, pool_param: dict):
        """Forward pass, one output position at a time.

        Args:
            x: ``(N, C, H, W)``.
            pool_param: ``{"pool_height": ph, "pool_width": pw, "stride": s}``, ints >= 1.

        Returns:
            out: ``(N, C, H', W')`` with ``H' = 1 + (H - ph) // s``, ``W' = 1 + (W - pw) // s``;
            cache: ``(x, pool_param)``.

        Raises:
            ValueError: bad shapes, or windows that do not tile ``x`` (``(H - ph) % s != 0``...).

        Rule: loops over the output positions are fine; no ``torch.nn.functional.max_pool2d``, no
        autograd.  There is no padding.
        """
        ph, pw, stride, H_out, W_out = check_pool(x, pool_param)
        ### BEGIN SOLUTION
        N, C = x.shape[:2]
        out = x.new_empty((N, C, H_out, W_out))
        for i in range(H_out):
            for j in range(W_out):
                window = x[:, :, i * stride:i * stride + ph, j * stride:j * stride + pw]
                out[:, :, i, j] = window.amax(dim=(2, 3))
        ### END SOLUTION
        cache = (x, pool_param)
        return out, cache

    @staticmethod
    def backward(dout: torch.Tensor, cache):
        """Backward pass: each window's gradient goes to ONE entry, its maximum (the first in
        row-major order on ties, as ``max_pool2d``); overlapping windows add up.

        Args:
            dout: ``(N, C, H', W')`` upstream gradient.
            cache: ``(x, pool_param)`` from :meth:`forward`.

        Returns:
            dx: ``(N, C, H, W)``.

        Rule: as :meth:`forward` (loops fine; no ``max_pool2d``, no autograd).
        """
        x, pool_param = cache
        ph, pw, stride, H_out, W_out = check_pool(x, pool_param)
        check_grad(dout, "dout", (*x.shape[:2], H_out, W_out), "the output (N, C, H', W')")
        ### BEGIN SOLUTION
        N, C = x.shape[:2]
        dx = torch.zeros_like(x)
        for i in range(H_out):
            for j in range(W_out):
                rows, cols = slice(i * stride, i * stride + ph), slice(j * stride, j * stride + pw)
                first_max = x[:, :, rows, cols].reshape(N, C, -1).argmax(dim=2, keepdim=True)  # first on ties
                grad = torch.zeros((N, C, ph * pw), dtype=x.dtype, device=x.device)
                grad.scatter_(2, first_max, dout[:, :, i, j].unsqueeze(2))
                dx[:, :, rows, cols] += grad.reshape(N, C, ph, pw)
        ### END SOLUTION
        return dx


class FastMaxPool:
    """Max pooling with :class:`MaxPool`'s API, vectorised.

    When the windows neither overlap nor leave gaps (``pool_height == pool_width
    == stride``), each of the ``ph * pw`` entries of a window ("tap") is a strided
    view of ``x``, and the running ``torch.maximum`` of the taps is every window's
    maximum at once.  The backward pass finds the maxima again: tap by tap, where
    the tap equals the window's maximum it takes the gradient still left for that
    window (so only the first maximum gets it).  Comparisons are written straight
    into float tensors (``torch.eq(..., out=float_tensor)``): on the CPUs we measured, ``where``,
    ``masked_fill`` and bool-to-float conversions cost several times more.
    Otherwise the windows are read from a strided view of ``x``, one
    ``argmax`` finds their first maxima and one scatter sends the gradient there.  The cache is private to this
    class: use it only through :meth:`backward`.
    """

    @staticmethod
    def forward(x: torch.Tensor, pool_param: dict):
        """Forward pass; shapes as in :meth:`MaxPool.forward`.

        Returns:
            out: ``(N, C, H', W')``; cache: for :meth:`backward` only.

        Rule: no loop over the output positions (one over the ``ph * pw`` entries of a window is fine);
        no ``max_pool2d``, no autograd.
        """
        ph, pw, stride, H_out, W_out = check_pool(x, pool_param)
        ### BEGIN SOLUTION
        N, C, H, W = x.shape
        tiled = ph == stride and pw == stride
        if tiled:  # disjoint windows: the running maximum of the ph*pw "taps" (strided views)
            out = x[:, :, 0::stride, 0::stride].clone()  # (N, C, H', W'): entry 0 of every window
            for k in range(1, ph * pw):
                torch.maximum(out, x[:, :, k // pw::stride, k % pw::stride], out=out)
            saved = (x, out)  # backward finds the maxima again
        else:
            x = x.contiguous()
            sN, sC, sH, sW = x.stride()
            windows = x.as_strided((N, C, H_out, W_out, ph, pw), (sN, sC, stride * sH, stride * sW, sH, sW))
            windows = windows.reshape(N, C, H_out, W_out, ph * pw)
            first_max = windows.argmax(dim=4, keepdim=True)  # the first maximum of each window
            out = windows.gather(4, first_max).squeeze(4)
            saved = first_max
        cache = (x.shape, ph, pw, stride, tiled, saved)
        ### END SOLUTION
        return out, cache

    @staticmethod
    def backward(dout: torch.Tensor, cache):
        """Backward pass; returns ``dx`` as :meth:`MaxPool.backward`.

        Rule: as :meth:`forward` (no loop over the output positions, no ``max_pool2d``, no autograd).
        """
        ### BEGIN SOLUTION
        (N, C, H, W), ph, pw, stride, tiled, saved = cache
        H_out, W_out = (H - ph) // stride + 1, (W - pw) // stride + 1
        check_grad(dout, "dout", (N, C, H_out, W_out), "the output (N, C, H', W')")
        if tiled:
            x, out = saved
            dx = torch.empty_like(x)  # the taps cover every entry of x exactly once
            left = torch.empty_like(out)  # the gradient each window has not handed out yet
            left.copy_(dout)
            is_max = torch.empty_like(out)
            for k in range(ph * pw):
                rows, cols = slice(k // pw, None, stride), slice(k % pw, None, stride)
                torch.eq(x[:, :, rows, cols], out, out=is_max)  # 1.0 where entry k is its window's maximum
                torch.mul(left, is_max, out=dx[:, :, rows, cols])
                left.sub_(dx[:, :, rows, cols])  # a later tie gets nothing: the first maximum took it all
        else:
            k = saved.squeeze(4)  # (N, C, H', W'): position inside the window (the first maximum), row-major
            device = dout.device
            top = torch.arange(H_out, device=device).reshape(H_out, 1) * stride
            left = torch.arange(W_out, device=device).reshape(1, W_out) * stride
            flat = (top + k // pw) * W + (left + k % pw)  # the maximum's position in the (H, W) plane
            dx = dout.new_zeros((N * C, H * W))
            dx.scatter_add_(1, flat.reshape(N * C, -1), dout.reshape(N * C, -1))
            dx = dx.reshape(N, C, H, W)
        ### END SOLUTION
        return dx


# --------------------------------------------------------------------------- batch normalization


class BatchNorm:
    """Batch normalization of ``x (N, D)``: ``out = gamma * (x - mean) / sqrt(var + eps) + beta``.

    ``bn_param`` is a dict with

    * ``"mode"`` (required): ``"train"`` normalises with the batch's mean and
      BIASED variance (divided by ``N``) and updates the running statistics;
      ``"test"`` normalises with the running statistics;
    * ``"eps"`` (default ``1e-5``), added to the variance;
    * ``"momentum"`` (default ``0.9``): ``running = momentum * running + (1 - momentum) * batch``,
      so it weighs the OLD value: ``torch.nn.BatchNorm1d(momentum=1 - momentum)`` behaves alike;
    * ``"running_mean"``, ``"running_var"``: ``(D,)`` tensors, created as zeros and
      ones on first use and written back into ``bn_param`` by every forward pass.
      The running variance is updated with the UNBIASED batch variance (divided by
      ``N - 1``), as torch does, so it estimates the population variance.

    ``forward`` returns a cache dict; ``backward`` and ``backward_alt`` accept the
    cache of either mode.
    """

    @staticmethod
    def forward(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, bn_param: dict):
        """Forward pass.

        Args:
            x: ``(N, D)``; in train mode ``N >= 2``.
            gamma: ``(D,)`` scale; beta: ``(D,)`` shift.
            bn_param: see the class docstring; its running statistics are updated in train mode.

        Returns:
            out: ``(N, D)``; cache: a dict for :meth:`backward`.

        Rule: no loops; nothing from ``torch.nn.functional`` (no ``batch_norm``), no autograd.
        """
        mode, eps, momentum, running_mean, running_var = check_batchnorm(x, gamma, beta, bn_param)
        cache = {"mode": mode, "x": x, "gamma": gamma, "eps": eps}
        if mode == "train":
            ### BEGIN SOLUTION
            N = x.shape[0]
            mean = x.mean(dim=0)
            xmu = x - mean
            var = (xmu * xmu).mean(dim=0)  # biased: normalise with what the batch has
            std = (var + eps).sqrt()
            inv_std = 1.0 / std
            # gamma * xhat + beta with xhat = xmu * inv_std, in one pass over the data instead of three:
            # the (D,) vector gamma * inv_std is folded first, and xhat is never stored (backward rebuilds it)
            out = torch.addcmul(beta, xmu, gamma * inv_std)
            running_mean = momentum * running_mean + (1 - momentum) * mean
            running_var = momentum * running_var + (1 - momentum) * var * (N / (N - 1))
            cache.update(xmu=xmu, var=var, std=std, inv_std=inv_std)
            ### END SOLUTION
        else:
            ### BEGIN SOLUTION
            inv_std = 1.0 / (running_var + eps).sqrt()
            xmu = x - running_mean
            out = torch.addcmul(beta, xmu, gamma * inv_std)
            cache.update(xmu=xmu, inv_std=inv_std)
            ### END SOLUTION
        bn_param["running_mean"] = running_mean
        bn_param["running_var"] = running_var
        return out, cache

    @staticmethod
    def backward(dout: torch.Tensor, cache: dict):
        """Backward pass through the computation graph, one elementary step at a time.

        Hint: draw the graph of the forward pass (mean, centred ``x``, variance, std, ``xhat``)
        on paper and send the gradient back through it node by node; keep what you need in the cache.

        Args:
            dout: ``(N, D)`` upstream gradient.
            cache: from :meth:`forward`.

        Returns:
            dx: ``(N, D)``; dgamma: ``(D,)``; dbeta: ``(D,)``.

        Rule: no loops; nothing from ``torch.nn.functional``, no autograd.
        """
        check_grad(dout, "dout", cache["x"].shape, "x (N, D)")
        ### BEGIN SOLUTION
        gamma, xmu, inv_std = cache["gamma"], cache["xmu"], cache["inv_std"]
        xhat = xmu * inv_std
        dbeta = dout.sum(dim=0)
        dgamma = (dout * xhat).sum(dim=0)
        dxhat = dout * gamma
        if cache["mode"] == "test":  # the statistics are constants
            return dxhat * inv_std, dgamma, dbeta
        N = dout.shape[0]
        std = cache["std"]
        # xhat = xmu * inv_std, inv_std = 1 / std, std = sqrt(var + eps), var = mean(xmu ** 2), xmu = x - mean
        dxmu = dxhat * inv_std
        dinv_std = (dxhat * xmu).sum(dim=0)
        dstd = -dinv_std / (std * std)
        dvar = dstd * 0.5 / std
        dxmu = dxmu + 2.0 * xmu * dvar / N
        dmean = -dxmu.sum(dim=0)
        dx = dxmu + dmean / N
        ### END SOLUTION
        return dx, dgamma, dbeta

    @staticmethod
    def backward_alt(dout: torch.Tensor, cache: dict):
        """Backward pass in closed form (the same result as :meth:`backward`, in fewer operations)::

            dx = inv_std / N * (N * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat)),  dxhat = dout * gamma

        with the sums over the batch.  Hint: derive it on paper from ``xhat``'s formula first; the
        code is then a line or two.  (It is faster still with the per-feature vectors gathered first:
        ``sum(dxhat) = gamma * dbeta`` and ``sum(dxhat * xhat) = gamma * dgamma``, so ``dx`` is
        ``dout * k1 + xmu * k2 + k3`` for three ``(D,)`` vectors: two passes over the data.)

        Rule: no loops; nothing from ``torch.nn.functional``, no autograd, and do not call :meth:`backward`.
        """
        check_grad(dout, "dout", cache["x"].shape, "x (N, D)")
        ### BEGIN SOLUTION
        gamma, xmu, inv_std = cache["gamma"], cache["xmu"], cache["inv_std"]
        scale = gamma * inv_std  # (D,): out = xmu * scale + beta
        dbeta = dout.sum(dim=0)
        dgamma = (dout * xmu).sum(dim=0) * inv_std  # sum(dout * xhat), xhat = xmu * inv_std
        if cache["mode"] == "test":
            return dout * scale, dgamma, dbeta
        N = dout.shape[0]
        # the formula above with sum(dxhat) = gamma * dbeta, sum(dxhat * xhat) = gamma * dgamma:
        # dx = scale * dout - (scale * inv_std * dgamma / N) * xmu - scale * dbeta / N, in two passes
        dx = torch.addcmul(-scale * dbeta / N, dout, scale).addcmul_(xmu, scale * inv_std * dgamma / N, value=-1)
        ### END SOLUTION
        return dx, dgamma, dbeta


class SpatialBatchNorm:
    """Batch normalization of images ``x (N, C, H, W)``: one mean and variance per channel,
    over all ``N * H * W`` values of that channel (``torch.nn.BatchNorm2d``).  ``bn_param`` as
    in :class:`BatchNorm`, with ``(C,)`` running statistics.

    Hint: each pixel is one "example" of :class:`BatchNorm`: move the channels last, flatten to
    ``(N*H*W, C)``, call :class:`BatchNorm` and undo the reshape -- a few lines each way."""

    @staticmethod
    def forward(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, bn_param: dict):
        """Forward pass.

        Args:
            x: ``(N, C, H, W)``.
            gamma, beta: ``(C,)``.
            bn_param: see :class:`BatchNorm`.

        Returns:
            out: ``(N, C, H, W)``; cache: for :meth:`backward`.

        Rule: no loops; with :class:`BatchNorm`, nothing from ``torch.nn.functional``, no autograd.
        """
        check_spatial_batchnorm(x, gamma, beta, bn_param)
        ### BEGIN SOLUTION
        N, C, H, W = x.shape
        x_flat = x.permute(0, 2, 3, 1).reshape(-1, C)  # every pixel of the batch is one "example"
        out_flat, cache = BatchNorm.forward(x_flat, gamma, beta, bn_param)
        out = out_flat.reshape(N, H, W, C).permute(0, 3, 1, 2)  # stored channels-last, like FastConv's
        ### END SOLUTION
        return out, cache

    @staticmethod
    def backward(dout: torch.Tensor, cache):
        """Backward pass.

        Returns:
            dx: ``(N, C, H, W)``; dgamma: ``(C,)``; dbeta: ``(C,)``.

        Rule: as :meth:`forward` (no loops, no autograd).
        """
        check_images(dout, "dout", "(N, C, H, W)")
        ### BEGIN SOLUTION
        N, C, H, W = dout.shape
        dout_flat = dout.permute(0, 2, 3, 1).reshape(-1, C)
        dx_flat, dgamma, dbeta = BatchNorm.backward_alt(dout_flat, cache)
        dx = dx_flat.reshape(N, H, W, C).permute(0, 3, 1, 2)
        ### END SOLUTION
        return dx, dgamma, dbeta


# --------------------------------------------------------------------------- sandwich layers


class Conv_ReLU:
    """``relu(conv(x))`` with :class:`FastConv`."""

    @staticmethod
    def forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, conv_param: dict):
        """Shapes as in :meth:`Conv.forward`; returns ``out (N, F, H', W')`` and a cache.

        Rule: with the layers above only (no torch layer or function, no loops, no autograd).
        """
        ### BEGIN SOLUTION
        a, conv_cache = FastConv.forward(x, w, b, conv_param)
        out, relu_cache = ReLU.forward(a)
        cache = (conv_cache, relu_cache)
        ### END SOLUTION
        return out, cache

    @staticmethod
    def backward(dout: torch.Tensor, cache):
        """Returns ``dx, dw, db``.

        Rule: with the layers above only (no torch layer or function, no loops, no autograd).
        """
        ### BEGIN SOLUTION
        conv_cache, relu_cache = cache
        da = ReLU.backward(dout, relu_cache)
        dx, dw, db = FastConv.backward(da, conv_cache)
        ### END SOLUTION
        return dx, dw, db


class Conv_ReLU_Pool:
    """``maxpool(relu(conv(x)))`` with :class:`FastConv` and :class:`FastMaxPool`.

    Max pooling and ReLU commute (``max(relu(a), relu(b)) = relu(max(a, b))``, and the gradient
    reaches the same entry), so the ReLU can run after the pool, on fewer numbers (4x fewer for 2x2)."""

    @staticmethod
    def forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, conv_param: dict, pool_param: dict):
        """Shapes as in :meth:`Conv.forward` and :meth:`MaxPool.forward`; returns ``out`` and a cache.

        Rule: with the layers above only (no torch layer or function, no loops, no autograd).
        """
        ### BEGIN SOLUTION
        a, conv_cache = FastConv.forward(x, w, b, conv_param)
        pooled, pool_cache = FastMaxPool.forward(a, pool_param)
        out, relu_cache = ReLU.forward(pooled)  # relu(maxpool(a)) = maxpool(relu(a)), on fewer numbers
        cache = (conv_cache, relu_cache, pool_cache)
        ### END SOLUTION
        return out, cache

    @staticmethod
    def backward(dout: torch.Tensor, cache):
        """Returns ``dx, dw, db``.

        Rule: with the layers above only (no torch layer or function, no loops, no autograd).
        """
        ### BEGIN SOLUTION
        conv_cache, relu_cache, pool_cache = cache
        dpooled = ReLU.backward(dout, relu_cache)
        da = FastMaxPool.backward(dpooled, pool_cache)
        dx, dw, db = FastConv.backward(da, conv_cache)
        ### END SOLUTION
        return dx, dw, db


class Linear_BatchNorm_ReLU:
    """``relu(batchnorm(x_flat @ w + b))``."""

    @staticmethod
    def forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
                bn_param: dict):
        """Args: ``x (N, d_1, ..., d_k)``, ``w (D, M)``, ``b, gamma, beta (M,)``, ``bn_param`` as in
        :class:`BatchNorm`.  Returns ``out (N, M)`` and a cache.

        Rule: with the layers above only (no torch layer or function, no loops, no autograd).
        """
        ### BEGIN SOLUTION
        a, fc_cache = Linear.forward(x, w, b)
        a_bn, bn_cache = BatchNorm.forward(a, gamma, beta, bn_param)
        out, relu_cache = ReLU.forward(a_bn)
        cache = (fc_cache, bn_cache, relu_cache)
        ### END SOLUTION
        return out, cache

    @staticmethod
    def backward(dout: torch.Tensor, cache):
        """Returns ``dx, dw, db, dgamma, dbeta``.

        Rule: with the layers above only (no torch layer or function, no loops, no autograd).
        """
        ### BEGIN SOLUTION
        fc_cache, bn_cache, relu_cache = cache
        da_bn = ReLU.backward(dout, relu_cache)
        da, dgamma, dbeta = BatchNorm.backward_alt(da_bn, bn_cache)
        dx, dw, db = Linear.backward(da, fc_cache)
        ### END SOLUTION
        return dx, dw, db, dgamma, dbeta


class Conv_BatchNorm_ReLU:
    """``relu(spatial_batchnorm(conv(x)))`` with :class:`FastConv`."""

    @staticmethod
    def forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
                conv_param: dict, bn_param: dict):
        """Shapes as in :meth:`Conv.forward`, ``gamma, beta (F,)``; returns ``out (N, F, H', W')`` and a cache.

        Rule: with the layers above only (no torch layer or function, no loops, no autograd).
        """
        ### BEGIN SOLUTION
        a, conv_cache = FastConv.forward(x, w, b, conv_param)
        an, bn_cache = SpatialBatchNorm.forward(a, gamma, beta, bn_param)
        out, relu_cache = ReLU.forward(an)
        cache = (conv_cache, bn_cache, relu_cache)
        ### END SOLUTION
        return out, cache

    @staticmethod
    def backward(dout: torch.Tensor, cache):
        """Returns ``dx, dw, db, dgamma, dbeta``.

        Rule: with the layers above only (no torch layer or function, no loops, no autograd).
        """
        ### BEGIN SOLUTION
        conv_cache, bn_cache, relu_cache = cache
        dan = ReLU.backward(dout, relu_cache)
        da, dgamma, dbeta = SpatialBatchNorm.backward(dan, bn_cache)
        dx, dw, db = FastConv.backward(da, conv_cache)
        ### END SOLUTION
        return dx, dw, db, dgamma, dbeta


class Conv_BatchNorm_ReLU_Pool:
    """``maxpool(relu(spatial_batchnorm(conv(x))))`` with :class:`FastConv` and :class:`FastMaxPool`.

    As in :class:`Conv_ReLU_Pool`, the ReLU may run after the pool, on fewer numbers."""

    @staticmethod
    def forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
                conv_param: dict, bn_param: dict, pool_param: dict):
        """Shapes as in :meth:`Conv.forward` and :meth:`MaxPool.forward`; returns ``out`` and a cache.

        Rule: with the layers above only (no torch layer or function, no loops, no autograd).
        """
        ### BEGIN SOLUTION
        a, conv_cache = FastConv.forward(x, w, b, conv_param)
        an, bn_cache = SpatialBatchNorm.forward(a, gamma, beta, bn_param)
        pooled, pool_cache = FastMaxPool.forward(an, pool_param)
        out, relu_cache = ReLU.forward(pooled)  # relu(maxpool(an)) = maxpool(relu(an)), on fewer numbers
        cache = (conv_cache, bn_cache, relu_cache, pool_cache)
        ### END SOLUTION
        return out, cache

    @staticmethod
    def backward(dout: torch.Tensor, cache):
        """Returns ``dx, dw, db, dgamma, dbeta``.

        Rule: with the layers above only (no torch layer or function, no loops, no autograd).
        """
        ### BEGIN SOLUTION
        conv_cache, bn_cache, relu_cache, pool_cache = cache
        dpooled = ReLU.backward(dout, relu_cache)
        dan = FastMaxPool.backward(dpooled, pool_cache)
        da, dgamma, dbeta = SpatialBatchNorm.backward(dan, bn_cache)
        dx, dw, db = FastConv.backward(da, conv_cache)
        ### END SOLUTION
        return dx, dw, db, dgamma, dbeta


# --------------------------------------------------------------------------- initialisation


def kaiming_initializer(Din: int, Dout: int, K: int | None = None, relu: bool = True, device="cpu",
                        dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Kaiming (He) initialisation: normal weights with variance ``gain / fan_in``.

    ``gain = 2`` before a ReLU (which zeroes half of its inputs on average), ``1``
    otherwise; ``fan_in`` is the number of inputs of one output unit.

    Args:
        Din: input size (``K is None``) or input channels.
        Dout: output size or output channels (filters).
        K: None for a linear layer, else the filter size ``K x K``.
        relu: whether a ReLU follows the layer.
        device, dtype: of the weights.

    Returns:
        ``(Din, Dout)`` with std ``sqrt(gain / Din)`` when ``K`` is None, else
        ``(Dout, Din, K, K)`` with std ``sqrt(gain / (Din * K * K))``.

    Rule: no loops; not ``torch.nn.init``.
    """
    check_kaiming(Din, Dout, K, relu, dtype)
    ### BEGIN SOLUTION
    gain = 2.0 if relu else 1.0
    if K is None:
        weight = torch.randn(Din, Dout, dtype=dtype, device=device) * math.sqrt(gain / Din)
    else:
        weight = torch.randn(Dout, Din, K, K, dtype=dtype, device=device) * math.sqrt(gain / (Din * K * K))
    ### END SOLUTION
    return weight


# --------------------------------------------------------------------------- models


def _l2(params: dict, names) -> torch.Tensor:
    return sum((params[name] ** 2).sum() for name in names)


class ThreeLayerConvNet:
    """``conv - relu - 2x2 max pool - linear - relu - linear - softmax``.

    The convolution has ``num_filters`` filters of ``filter_size x filter_size``,
    stride 1 and zero padding ``(filter_size - 1) // 2``, so an odd filter size
    keeps the ``H x W`` size; the pool (stride 2) halves it.

    Args:
        input_dims: ``(C, H, W)`` of one input; ``H`` and ``W`` even.
        num_filters: ``F``.
        filter_size: odd filter width and height.
        hidden_dim: size of the hidden linear layer.
        num_classes: ``C``.
        weight_scale: std of the random (normal) initial weights; biases start at zero.
        reg: L2 strength; the loss adds ``reg * (sum(W1**2) + sum(W2**2) + sum(W3**2))``.
        dtype, device: of the parameters.

    Attributes:
        params: ``W1 (F, C, fs, fs), b1 (F,), W2 (F*H/2*W/2, hidden_dim), b2 (hidden_dim,),
        W3 (hidden_dim, num_classes), b3 (num_classes,)``.
    """

    def __init__(self, input_dims=(3, 32, 32), num_filters: int = 32, filter_size: int = 7, hidden_dim: int = 100,
                 num_classes: int = 10, weight_scale: float = 1e-3, reg: float = 0.0,
                 dtype: torch.dtype = torch.float, device="cpu"):
        self.input_dims, self.reg = check_three_layer_conv_net(input_dims, num_filters, filter_size, hidden_dim,
                                                               num_classes, weight_scale, reg, dtype)
        C, H, W = self.input_dims
        self.dtype = dtype
        self.params: dict[str, torch.Tensor] = {}
        ### BEGIN SOLUTION
        shapes = {"W1": (num_filters, C, filter_size, filter_size), "b1": (num_filters,),
                  "W2": (num_filters * (H // 2) * (W // 2), hidden_dim), "b2": (hidden_dim,),
                  "W3": (hidden_dim, num_classes), "b3": (num_classes,)}
        for name, shape in shapes.items():
            if name.startswith("W"):
                self.params[name] = weight_scale * torch.randn(shape, dtype=dtype, device=device)
            else:
                self.params[name] = torch.zeros(shape, dtype=dtype, device=device)
        ### END SOLUTION

    def save(self, path) -> None:
        """Write ``input_dims``, ``reg`` and ``params`` to ``path`` (``torch.load(weights_only=True)`` reads it)."""
        save_model(path, {"format": SAVE_FORMAT, "model": "ThreeLayerConvNet", "reg": self.reg,
                           "input_dims": list(self.input_dims),
                           "params": {k: v.detach().cpu() for k, v in self.params.items()}})

    def load(self, path, dtype: torch.dtype | None = None, device="cpu") -> None:
        """Replace ``input_dims``, ``reg`` and ``params`` by those saved in ``path``.

        ``dtype=None`` keeps the saved dtype; ``device`` is where the parameters go.
        """
        payload = load_model(path, "ThreeLayerConvNet")
        self.reg = float(payload["reg"])
        self.input_dims = tuple(int(d) for d in payload["input_dims"])
        self.params = loaded_params(payload["params"], dtype, device)
        self.dtype = self.params["W1"].dtype

    def loss(self, X: torch.Tensor, y: torch.Tensor | None = None):
        """Scores, or loss and gradients, for a minibatch.

        Args:
            X: ``(N, C, H, W)`` images matching ``input_dims``.
            y: ``(N,)`` integer labels in ``[0, num_classes)``, or None.

        Returns:
            ``y is None``: scores ``(N, num_classes)``.  Otherwise ``(loss, grads)``: the
            scalar loss (data loss + L2) and the gradients, keyed and shaped like ``params``.

        Rule: with the layers above and ``softmax_loss``; nothing from ``torch.nn``, no autograd.
        """
        check_model_images(X, self.input_dims)
        p = self.params
        filter_size = p["W1"].shape[2]
        conv_param = {"stride": 1, "pad": (filter_size - 1) // 2}
        pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
        ### BEGIN SOLUTION
        pooled, pool_cache = Conv_ReLU_Pool.forward(X, p["W1"], p["b1"], conv_param, pool_param)
        hidden, hidden_cache = Linear_ReLU.forward(pooled, p["W2"], p["b2"])
        scores, scores_cache = Linear.forward(hidden, p["W3"], p["b3"])
        ### END SOLUTION
        if y is None:
            return scores
        grads = {}
        ### BEGIN SOLUTION
        loss, dscores = softmax_loss(scores, y)
        loss = loss + self.reg * _l2(p, ("W1", "W2", "W3"))
        dhidden, grads["W3"], grads["b3"] = Linear.backward(dscores, scores_cache)
        dpooled, grads["W2"], grads["b2"] = Linear_ReLU.backward(dhidden, hidden_cache)
        _, grads["W1"], grads["b1"] = Conv_ReLU_Pool.backward(dpooled, pool_cache)
        for name in ("W1", "W2", "W3"):
            grads[name] = grads[name] + 2 * self.reg * p[name]
        ### END SOLUTION
        return loss, grads


_CONV3 = {"stride": 1, "pad": 1}
_POOL2 = {"pool_height": 2, "pool_width": 2, "stride": 2}


class DeepConvNet:
    """Convolutional network of any depth with optional spatial batch normalization.

    Architecture (``L = len(num_filters) + 1`` layers with weights)::

        {conv 3x3 (stride 1, pad 1) - [spatial batchnorm] - relu - [2x2 max pool]} x (L - 1) - linear - softmax

    The ``2x2`` max pool (stride 2) follows conv layer ``i`` (counting from 0) when
    ``i`` is in ``max_pools``; it halves the height and width, which must then be even.

    Args:
        input_dims: ``(C, H, W)`` of one input.
        num_filters: list of the ``L - 1`` filter counts (may be empty: a linear classifier).
        max_pools: indices in ``[0, L - 1)`` of the conv layers followed by a max pool, each at most once.
        batchnorm: add spatial batch normalization after every convolution.
        num_classes: ``C``.
        weight_scale: std of the random (normal) initial weights, or ``"kaiming"`` for
            :func:`kaiming_initializer` (gain 2 for the convolutions, 1 for the last linear layer).
        reg: L2 strength; the loss adds ``reg * sum_l sum(Wl ** 2)``.
        weight_initializer: None, or a function with :func:`kaiming_initializer`'s signature
            that makes every weight; it takes precedence over ``weight_scale``.
        dtype, device: of the parameters.

    Attributes:
        params: ``W1 (F1, C, 3, 3), b1 (F1,), ..., W{L-1}, b{L-1}``, the last ``WL (D, num_classes)``
            and ``bL`` where ``D = F_{L-1} * H_L * W_L`` (the size after the pools), and with
            batchnorm ``gamma1, beta1 (F1,), ..., gamma{L-1}, beta{L-1}`` (start at 1 and 0).
        bn_params: one :class:`BatchNorm` ``bn_param`` per conv layer (empty without batchnorm),
            holding the running statistics; :meth:`loss` sets their mode ("test" when ``y`` is
            None, else "train").
        num_layers: ``L``.
    """

    def __init__(self, input_dims=(3, 32, 32), num_filters=(8, 8, 8, 8, 8), max_pools=(0, 1, 2, 3, 4),
                 batchnorm: bool = False, num_classes: int = 10, weight_scale=1e-3, reg: float = 0.0,
                 weight_initializer=None, dtype: torch.dtype = torch.float, device="cpu"):
        self.input_dims, self.max_pools, self.reg = check_deep_conv_net(
            input_dims, num_filters, max_pools, batchnorm, num_classes, weight_scale, reg, weight_initializer, dtype)
        self.num_layers = len(num_filters) + 1
        self.batchnorm = batchnorm
        self.dtype = dtype
        self.bn_params = [{"mode": "train"} for _ in num_filters] if batchnorm else []
        C, H, W = self.input_dims
        if weight_initializer is None and weight_scale == "kaiming":
            weight_initializer = kaiming_initializer
        self.params: dict[str, torch.Tensor] = {}
        ### BEGIN SOLUTION
        L = self.num_layers
        channels = [C, *num_filters]
        for layer in range(1, L):
            c_in, c_out = channels[layer - 1], channels[layer]
            if weight_initializer is not None:
                w = weight_initializer(c_in, c_out, K=3, relu=True, device=device, dtype=dtype)
            else:
                w = weight_scale * torch.randn(c_out, c_in, 3, 3, dtype=dtype, device=device)
            self.params[f"W{layer}"] = w
            self.params[f"b{layer}"] = torch.zeros(c_out, dtype=dtype, device=device)
            if batchnorm:
                self.params[f"gamma{layer}"] = torch.ones(c_out, dtype=dtype, device=device)
                self.params[f"beta{layer}"] = torch.zeros(c_out, dtype=dtype, device=device)
        D = channels[-1] * (H >> len(self.max_pools)) * (W >> len(self.max_pools))
        if weight_initializer is not None:
            w = weight_initializer(D, num_classes, K=None, relu=False, device=device, dtype=dtype)
        else:
            w = weight_scale * torch.randn(D, num_classes, dtype=dtype, device=device)
        self.params[f"W{L}"] = w
        self.params[f"b{L}"] = torch.zeros(num_classes, dtype=dtype, device=device)
        ### END SOLUTION

    def save(self, path) -> None:
        """Write the architecture, ``reg``, ``params`` and the batchnorm running statistics to ``path``."""
        bn = [{key: value.detach().cpu() if isinstance(value, torch.Tensor) else value
               for key, value in param.items() if key != "mode"} for param in self.bn_params]
        save_model(path, {"format": SAVE_FORMAT, "model": "DeepConvNet", "reg": self.reg,
                           "input_dims": list(self.input_dims), "num_layers": self.num_layers,
                           "max_pools": list(self.max_pools), "batchnorm": self.batchnorm, "bn_params": bn,
                           "params": {k: v.detach().cpu() for k, v in self.params.items()}})

    def load(self, path, dtype: torch.dtype | None = None, device="cpu") -> None:
        """Replace the architecture, ``reg``, ``params`` and running statistics by those saved in ``path``.

        ``dtype=None`` keeps the saved dtype; ``device`` is where the tensors go.
        """
        payload = load_model(path, "DeepConvNet")
        self.reg = float(payload["reg"])
        self.input_dims = tuple(int(d) for d in payload["input_dims"])
        self.num_layers = int(payload["num_layers"])
        self.max_pools = [int(i) for i in payload["max_pools"]]
        self.batchnorm = bool(payload["batchnorm"])
        self.params = loaded_params(payload["params"], dtype, device)
        self.dtype = self.params["W1"].dtype
        self.bn_params = [{"mode": "train", **{key: value.to(device=device, dtype=self.dtype)
                                               if isinstance(value, torch.Tensor) else value
                                               for key, value in param.items()}}
                          for param in payload["bn_params"]]

    def loss(self, X: torch.Tensor, y: torch.Tensor | None = None):
        """Scores, or loss and gradients, for a minibatch (see :meth:`ThreeLayerConvNet.loss`).

        With ``y`` None batch normalization runs in test mode (running statistics) and
        the scores ``(N, C)`` come back; otherwise in train mode, returning ``(loss, grads)``.

        Rule: with the layers above and ``softmax_loss`` (a loop over the layers is fine); nothing from
        ``torch.nn``, no autograd.
        """
        check_model_images(X, self.input_dims)
        mode = "test" if y is None else "train"
        for bn_param in self.bn_params:
            bn_param["mode"] = mode
        L = self.num_layers
        ### BEGIN SOLUTION
        p = self.params
        caches = []
        out = X
        for layer in range(1, L):
            w, b = p[f"W{layer}"], p[f"b{layer}"]
            pool = layer - 1 in self.max_pools
            if self.batchnorm:
                gamma, beta, bn_param = p[f"gamma{layer}"], p[f"beta{layer}"], self.bn_params[layer - 1]
                if pool:
                    out, cache = Conv_BatchNorm_ReLU_Pool.forward(out, w, b, gamma, beta, _CONV3, bn_param, _POOL2)
                else:
                    out, cache = Conv_BatchNorm_ReLU.forward(out, w, b, gamma, beta, _CONV3, bn_param)
            elif pool:
                out, cache = Conv_ReLU_Pool.forward(out, w, b, _CONV3, _POOL2)
            else:
                out, cache = Conv_ReLU.forward(out, w, b, _CONV3)
            caches.append((pool, cache))
        scores, last_cache = Linear.forward(out, p[f"W{L}"], p[f"b{L}"])
        ### END SOLUTION
        if y is None:
            return scores
        grads = {}
        ### BEGIN SOLUTION
        loss, dscores = softmax_loss(scores, y)
        loss = loss + self.reg * _l2(p, [f"W{layer}" for layer in range(1, L + 1)])
        dout, grads[f"W{L}"], grads[f"b{L}"] = Linear.backward(dscores, last_cache)
        for layer in range(L - 1, 0, -1):
            pool, cache = caches[layer - 1]
            if self.batchnorm:
                sandwich = Conv_BatchNorm_ReLU_Pool if pool else Conv_BatchNorm_ReLU
                dout, dw, db, grads[f"gamma{layer}"], grads[f"beta{layer}"] = sandwich.backward(dout, cache)
            else:
                sandwich = Conv_ReLU_Pool if pool else Conv_ReLU
                dout, dw, db = sandwich.backward(dout, cache)
            grads[f"W{layer}"], grads[f"b{layer}"] = dw, db
        for layer in range(1, L + 1):
            grads[f"W{layer}"] = grads[f"W{layer}"] + 2 * self.reg * p[f"W{layer}"]
        ### END SOLUTION
        return loss, grads


# --------------------------------------------------------------------------- your hyper-parameters

#: The network and training run of :func:`find_overfit_parameters` (the notebook and the tests use these).
OVERFIT_NET = {"num_filters": [8, 16, 32, 64], "max_pools": [0, 1], "reg": 1e-5}
OVERFIT_SOLVER = {"num_epochs": 30, "batch_size": 10}


def find_overfit_parameters() -> tuple[float, float]:
    """``(weight_scale, learning_rate)`` with which a DeepConvNet overfits 50 images.

    The network is ``DeepConvNet(input_dims=X.shape[1:], num_classes=10, **OVERFIT_NET,
    weight_scale=weight_scale)`` (four conv layers of 8, 16, 32 and 64 filters, max pools
    after the first two, ``reg=1e-5``, no batchnorm), trained by
    ``Solver(model, data, update_rule=adam, optim_config={"learning_rate": learning_rate},
    **OVERFIT_SOLVER)`` (30 epochs, batches of 10) on 50 training images
    (Fashion-MNIST ``1x28x28`` or CIFAR-10 ``3x32x32``); it must reach 100% training
    accuracy.
    """
    ### BEGIN SOLUTION
    weight_scale = 1e-1
    learning_rate = 2e-3
    ### END SOLUTION
    return weight_scale, learning_rate


def create_convolutional_solver_instance(data_dict: dict, dtype: torch.dtype = torch.float32, device="cpu",
                                         **solver_kwargs) -> Solver:
    """A :class:`Solver` (untrained) for the DeepConvNet you train on ``data_dict``.

    Choose the architecture (filters, pools, batchnorm), initialisation,
    regularisation, Adam settings and data augmentation (the Solver's ``augment``;
    :func:`helpers.datasets.random_flip_and_shift` mirrors and shifts each training
    batch, which suits CIFAR-10 and Fashion-MNIST, not digits).  The input size and the number of classes
    are read from the data, so the same choice serves Fashion-MNIST (``1x28x28``)
    and CIFAR-10 (``3x32x32``).  In full mode the notebook trains your ``num_epochs``
    with a budget of 10 minutes of training: choose on the validation split what is
    best within that time (hint: on a CPU, a network with a quarter of the
    multiply-adds sees the data four times as often; ``python bench/convnet_recipe.py``
    shows how the course's choice was made).

    Args:
        data_dict: ``X_train (N, C, H, W)`` images (``preprocess_dataset(..., flatten=False)``),
            ``y_train``, ``X_val``, ``y_val``.
        dtype, device: of the model's parameters; the solver sends batches to ``device``.
        **solver_kwargs: override the Solver arguments chosen here
            (``verbose``, ``checkpoint_name``, ``num_epochs``...).
    """
    check_data_dict(data_dict, ("X_train", "y_train", "X_val", "y_val"), images=True)
    input_dims = tuple(data_dict["X_train"].shape[1:])
    num_classes = int(max(data_dict["y_train"].max(), data_dict["y_val"].max())) + 1
    ### BEGIN SOLUTION
    model = DeepConvNet(input_dims=input_dims, num_classes=num_classes, num_filters=[32, 64, 64],
                        max_pools=[0, 1], batchnorm=True, weight_scale="kaiming", reg=1e-3, dtype=dtype,
                        device=device)
    settings = dict(update_rule=adam, optim_config={"learning_rate": 2e-3}, lr_decay=0.8, num_epochs=12,
                    batch_size=128, device=device)
    ### END SOLUTION
    settings.update(solver_kwargs)
    return Solver(model, data_dict, **settings)
