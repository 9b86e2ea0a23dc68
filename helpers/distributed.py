"""Data-parallel training with PyTorch's own engine (``torchrun`` + ``DistributedDataParallel``) and mixed precision.

The same script runs on one process or many::

    python -m papers.detr train ...                                   # one process
    torchrun --nproc_per_node=8 -m papers.detr train ...              # 8 processes on one machine
    torchrun --nnodes=2 --node_rank=R --nproc_per_node=8 \\
             --rdzv_endpoint=HOST:29500 -m papers.detr train ...     # 16 processes on 2 machines

``torchrun`` starts one process per GPU (or CPU slot) and tells each who it is through the
environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``).
:func:`init_distributed` reads it and joins the group (``nccl`` on GPUs, ``gloo`` on CPUs);
without those variables it is a one-process run and nothing is initialised.

What each process does (:func:`helpers.train.train` does all of it when a group is initialised):

* it reads a different part of every epoch: :func:`distributed_loader` gives its ``DataLoader``
  a :class:`~torch.utils.data.DistributedSampler` seeded with ``seed``; ``train`` calls
  ``set_epoch(epoch)`` before each epoch, so epoch ``e``'s order is fixed by ``(seed, e)`` and a
  resumed run sees the same batches;
* its model is wrapped in :class:`~torch.nn.parallel.DistributedDataParallel`: gradients are
  averaged over the processes during ``backward``, so every process makes the same update;
  with ``B`` images per process and ``N`` processes, one step sees ``N * B`` images
  (:func:`describe_scale` states both);
* only rank 0 prints, shows progress bars and writes checkpoints, saved models and results
  (:func:`is_main`).

BatchNorm layers normalise over each process's own batch (no ``SyncBatchNorm``): a model with
BatchNorm trained on ``N`` processes of ``B`` images is not the same as one process with ``N * B``.

Mixed precision (:func:`autocast`): ``torch.autocast`` in bfloat16 where the device has it (every
CPU, NVIDIA GPUs from Ampere on), else float16 with a gradient scaler (:func:`grad_scaler`).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

AMP_CHOICES = ("bf16", "fp16")


@dataclass(frozen=True)
class Process:
    """Who this process is in the run (``world_size == 1``: a one-process run)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun(environ=None) -> bool:
    """True when ``torchrun`` (or another launcher) set ``RANK`` and ``WORLD_SIZE``."""
    environ = os.environ if environ is None else environ
    return "RANK" in environ and "WORLD_SIZE" in environ


def _env_int(environ, name: str) -> int:
    try:
        return int(environ[name])
    except (KeyError, ValueError):
        raise ValueError(f"{name}={environ.get(name)!r} in the environment: torchrun sets it to an integer; "
                         "launch with torchrun, or unset RANK and WORLD_SIZE for a one-process run") from None


def init_distributed(device: str = "auto", environ=None) -> Process:
    """Join the process group ``torchrun`` described in the environment, once; return this process.

    Args:
        device: ``"cuda"``, ``"cpu"`` or ``"auto"`` (CUDA when available).  On CUDA each process takes the
            GPU ``LOCAL_RANK`` and the group uses ``nccl``; on the CPU it uses ``gloo``.
        environ: the environment (default ``os.environ``).

    Without ``RANK`` / ``WORLD_SIZE`` (a plain ``python -m ...``) nothing is initialised and the
    process is rank 0 of 1.
    """
    environ = os.environ if environ is None else environ
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda and not torch.cuda.is_available():
        raise ValueError("device cuda was asked for but torch sees no GPU; pass --device cpu")
    if not launched_by_torchrun(environ):
        return Process(device=torch.device("cuda" if use_cuda else "cpu"))
    rank, world = _env_int(environ, "RANK"), _env_int(environ, "WORLD_SIZE")
    local = int(environ.get("LOCAL_RANK", rank))
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    where = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    return Process(rank=rank, world_size=world, local_rank=local, device=where, backend=backend)


def teardown(wait: bool = True) -> None:
    """Leave the process group (every process calls it at the end; harmless when none was joined).

    ``wait``: first wait for the other processes (a finished run); False after an error, when the others
    may never arrive (torchrun then stops them).
    """
    if dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised group, ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """True on rank 0 (and in a one-process run): the process that logs and writes files."""
    return world()[0] == 0


def barrier() -> None:
    """Wait for every process (nothing to do in a one-process run)."""
    if world()[1] > 1:
        dist.barrier()


def distributed_loader(dataset, batch_size: int, seed: int, shuffle: bool = True, drop_last: bool = True,
                       **loader_kwargs) -> DataLoader:
    """A ``DataLoader`` of ``batch_size`` items *per process*, each process reading its own share.

    A :class:`~torch.utils.data.DistributedSampler` (``seed``; ``set_epoch`` is called by
    :func:`helpers.train.train`) splits every epoch's order between the processes; in a one-process
    run it is the whole order.  ``drop_last`` applies to the sampler (each process gets the same number
    of items) and to the batches.
    """
    rank, size = world()
    sampler = DistributedSampler(dataset, num_replicas=size, rank=rank, shuffle=shuffle, seed=seed,
                                 drop_last=drop_last)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last, **loader_kwargs)


def describe_scale(batch_per_process: int, lr: float, world_size: int | None = None) -> str:
    """One line stating the batch size and learning rate per process and in total.

    The learning rate is the optimizer's (the same on every process); the gradient it multiplies is
    the mean over all ``world_size * batch_per_process`` images of a step.
    """
    size = world()[1] if world_size is None else world_size
    return (f"{size} process{'es' if size > 1 else ''} x {batch_per_process} images = batch {size * batch_per_process} "
            f"per step; learning rate {lr:g} (the same on every process, applied to the gradient averaged over "
            f"all {size * batch_per_process} images)")


def resolve_amp(amp, device) -> torch.dtype | None:
    """The autocast dtype for ``amp``: None/False (off), True (bf16 where supported, else fp16), "bf16", "fp16".

    bfloat16 runs on every CPU and on NVIDIA GPUs from Ampere (sm 80) on; older GPUs get float16, which
    needs :func:`grad_scaler`.  float16 on the CPU is refused (slow and unscaled).
    """
    if amp is None or amp is False:
        return None
    device = torch.device(device)
    if amp is True:
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            return torch.float16
        return torch.bfloat16
    if amp not in AMP_CHOICES:
        raise ValueError(f"amp must be False, True, 'bf16' or 'fp16', got {amp!r}")
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("amp='fp16' needs a CUDA device; on the CPU use amp='bf16' (or amp=True)")
    return torch.bfloat16 if amp == "bf16" else torch.float16


def autocast(device, dtype: torch.dtype | None):
    """``torch.autocast(device.type, dtype)``, or a context that does nothing when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def grad_scaler(dtype: torch.dtype | None):
    """A gradient scaler for float16 autocast (gradients would underflow without it); None otherwise."""
    if dtype != torch.float16:
        return None
    return torch.amp.GradScaler("cuda")


def all_mean(value: float, device) -> float:
    """The mean of ``value`` over the processes (``value`` itself in a one-process run)."""
    if world()[1] == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor) / world()[1]


def any_process(flag: bool, device) -> bool:
    """True when ``flag`` is true on any process: a decision every process then takes together."""
    if world()[1] == 1:
        return flag
    tensor = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item() > 0)


def gather(obj) -> list | None:
    """Every process's ``obj`` as a list on rank 0 (None elsewhere); ``[obj]`` in a one-process run."""
    rank, size = world()
    if size == 1:
        return [obj]
    out = [None] * size if rank == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out
