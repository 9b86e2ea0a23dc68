"""Data-parallel training (helpers/distributed.py and helpers.train.train under torchrun) and mixed precision.

The distributed tests start ``torchrun --nproc_per_node=2`` on the CPU with the gloo backend, bound to the
loopback interface only (``MASTER_ADDR=127.0.0.1``, ``GLOO_SOCKET_IFNAME=lo``, a free port), on the small
model of ``tests/ddp_worker.py``.  No GPU is needed or used.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DistributedSampler

from helpers import distributed
from helpers.train import load_checkpoint, train

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ddp_worker  # noqa: E402

WORKER = Path(__file__).resolve().parent / "ddp_worker.py"
ROOT = WORKER.parent.parent
# Parameters after 8 SGD steps (momentum 0.9) of 2 processes x 8 samples against 1 process x 16: the
# gradient is the same mean over the same 16 samples, summed in another order (two means of 8 added by
# gloo's all-reduce and halved, against one mean of 16), so float32 rounding differs in the last bits
# (measured: at most 6e-8 on weights of size ~0.3).  1e-6 is ~16 float32 ulps at 1.0.
DDP_ATOL = 1e-6


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(out: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the worker on 2 CPU processes over loopback; its outputs go to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT),
           "MASTER_ADDR": "127.0.0.1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
               "--master_addr=127.0.0.1", f"--master_port={free_port()}", "--max_restarts=0", str(WORKER),
               "--out", str(out), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def result(out: Path, rank: int) -> dict:
    return torch.load(out / f"rank{rank}.pt", weights_only=True)


def test_two_processes_equal_one_process_with_the_same_total_batch(tmp_path):
    done = torchrun(tmp_path, "--batch", "8", "--epochs", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    rank0, rank1 = result(tmp_path, 0), result(tmp_path, 1)
    assert rank0["world_size"] == 2 and rank0["steps"] == 8       # 64 samples / (2 x 8) = 4 steps per epoch
    single, history = ddp_worker.run(batch=16, epochs=2)
    assert history["global_step"] == 8
    for name, value in single.state_dict().items():
        assert torch.equal(rank0["params"][name], rank1["params"][name]), f"{name}: the processes disagree"
        gap = float((rank0["params"][name] - value).abs().max())
        assert gap <= DDP_ATOL, f"{name}: 2 processes x 8 vs 1 x 16 differ by {gap:.2e}"
        assert not torch.equal(value, ddp_worker.build(0.0).state_dict()[name])   # it did train


def test_killed_run_resumed_under_torchrun_ends_where_an_uninterrupted_one_does(tmp_path):
    args = ("--batch", "8", "--epochs", "2", "--dropout", "0.3")   # dropout: each process's RNG must resume
    whole = torchrun(tmp_path / "whole", *args, "--checkpoint", str(tmp_path / "whole" / "run.pt"))
    assert whole.returncode == 0, whole.stderr[-3000:]
    checkpoint = str(tmp_path / "cut" / "run.pt")
    killed = torchrun(tmp_path / "cut", *args, "--checkpoint", checkpoint, "--die-after", "5")
    assert killed.returncode != 0 and not (tmp_path / "cut" / "rank0.pt").exists()
    state = load_checkpoint(checkpoint, ddp_worker.build(0.3))
    assert state["history"]["global_step"] == 4 and state["progress"]["batch"] == 0   # saved every 2 steps
    assert len(state["rng_per_rank"]) == 2
    resumed = torchrun(tmp_path / "cut", *args, "--checkpoint", checkpoint)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for rank in (0, 1):
        a, b = result(tmp_path / "whole", rank), result(tmp_path / "cut", rank)
        assert a["steps"] == b["steps"] == 8 and a["loss"] == b["loss"]
        for name in a["params"]:
            assert torch.equal(a["params"][name], b["params"][name]), f"rank {rank} {name} differs after resume"


def test_only_rank_0_writes_checkpoints(tmp_path):
    done = torchrun(tmp_path, "--epochs", "1", "--checkpoint", str(tmp_path / "run.pt"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert result(tmp_path, 1)["written"] == []
    assert result(tmp_path, 0)["written"] == [str(tmp_path / "run.pt")] * 3   # steps 2 and 4 + end of epoch
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rank0.pt", "rank1.pt", "run.pt"]


def test_each_epoch_has_its_own_order_fixed_by_seed_and_epoch():
    seen = []

    def loss_fn(model, batch):
        seen.append(batch[0][:, 0].tolist())
        return ddp_worker.loss_fn(model, batch)

    data = ddp_worker.dataset()
    model = ddp_worker.build(0.0)
    loader = distributed.distributed_loader(data, 64, seed=7)
    train(model, torch.optim.SGD(model.parameters(), lr=0.1), loader, loss_fn, num_epochs=2, progress=False)
    for epoch in (0, 1):
        sampler = DistributedSampler(data, num_replicas=1, rank=0, seed=7)
        sampler.set_epoch(epoch)
        assert seen[epoch] == data.tensors[0][list(sampler), 0].tolist()
    assert seen[0] != seen[1]


def test_describe_scale_states_per_process_and_total():
    line = distributed.describe_scale(16, 1e-3, world_size=8)
    assert "8 processes x 16 images = batch 128" in line and "learning rate 0.001" in line


def test_without_torchrun_nothing_is_initialised():
    process = distributed.init_distributed("cpu", environ={})
    assert (process.rank, process.world_size, process.backend) == (0, 1, None) and process.is_main
    with pytest.raises(ValueError, match="RANK"):
        distributed.init_distributed("cpu", environ={"RANK": "x", "WORLD_SIZE": "2"})


# bfloat16 keeps 8 bits of mantissa: each value is rounded by up to 2**-9 relative.  The loss of a step (two
# layers, a cross-entropy averaged over 32 samples, where roundings partly cancel) must stay within one bf16
# step of fp32, 2**-8 = 3.9e-3 relative (measured 3.0e-5; the weights after the step: 5.5e-5 apart).
BF16_RTOL = 2**-8


def test_bf16_autocast_step_stays_close_to_fp32():
    data = ddp_worker.dataset()
    batch = data.tensors[0][:32], data.tensors[1][:32]
    losses, params = {}, {}
    for amp in (False, True):
        model = ddp_worker.build(0.0, width=64)
        history = train(model, torch.optim.SGD(model.parameters(), lr=0.1), [batch], ddp_worker.loss_fn,
                        num_epochs=1, amp=amp, progress=False, log_every=1)
        losses[amp], params[amp] = history["loss"][0], model.state_dict()
    assert distributed.resolve_amp(True, "cpu") == torch.bfloat16
    assert losses[True] != losses[False]                      # autocast did run in bfloat16
    assert abs(losses[True] - losses[False]) <= BF16_RTOL * abs(losses[False])
    for name, value in params[False].items():                 # weights stay float32
        assert params[True][name].dtype == torch.float32
        assert torch.allclose(params[True][name], value, atol=1e-3)


def test_amp_refuses_what_it_cannot_do():
    model = ddp_worker.build(0.0)
    with pytest.raises(ValueError, match="CUDA"):
        distributed.resolve_amp("fp16", "cpu")
    with pytest.raises(ValueError, match="amp must be"):
        distributed.resolve_amp("int8", "cpu")
    with pytest.raises(ValueError, match="step_fn"):
        train(model, torch.optim.SGD(model.parameters(), lr=0.1), [], step_fn=lambda m, b: 0.0, amp=True)
