"""Worker for tests/test_torch_distributed.py, one process per rank on loopback: trains a
small MLP with l2decay.torch.AdamW under DistributedDataParallel (optionally with
ZeroRedundancyOptimizer) and saves each rank's final parameters.

usage: python _dist_worker.py OUTDIR MODE RANK WORLD PORT
MODE: "ddp" (every rank holds the whole optimizer state) or "zero" (state sharded over ranks).
"""
import datetime
import faulthandler
import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.optim import ZeroRedundancyOptimizer
from torch.nn.parallel import DistributedDataParallel

import l2decay.torch as lt

STEPS = 50
LR, WD = 1e-2, 0.1


def data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(64, 8, generator=g), torch.randn(64, 2, generator=g)


def model():
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))


def train(net, opt, X, y):
    for _ in range(STEPS):
        opt.zero_grad()
        ((net(X) - y) ** 2).mean().backward()
        opt.step()


def single():
    """One process on the whole batch: what two ranks on its halves must reproduce."""
    net = model()
    X, y = data()
    train(net, lt.AdamW(net.parameters(), lr=LR, weight_decay=WD), X, y)
    return [p.detach().clone() for p in net.parameters()]


def main(outdir, mode, rank, world, port):
    faulthandler.dump_traceback_later(80, exit=True)   # a hang shows where, then ends
    torch.set_num_threads(1)
    # loopback only: the rendezvous on 127.0.0.1, and gloo's sockets on the lo interface
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=120))
    net = DistributedDataParallel(model())
    if mode == "zero":
        opt = ZeroRedundancyOptimizer(net.parameters(), optimizer_class=lt.AdamW, lr=LR, weight_decay=WD)
    else:
        opt = lt.AdamW(net.parameters(), lr=LR, weight_decay=WD)
    X, y = data()
    half = X.shape[0] // world
    train(net, opt, X[rank * half:(rank + 1) * half], y[rank * half:(rank + 1) * half])
    torch.save([p.detach().clone() for p in net.module.parameters()], os.path.join(outdir, f"{mode}-{rank}.pt"))
    if mode == "zero":   # the sharded state: each rank holds only its params' state
        torch.save(len(opt.optim.state), os.path.join(outdir, f"{mode}-{rank}-states.pt"))
    # Both ranks have written their results; then leave without tearing gloo down: in about one
    # run in four, the rank that finished last hung in destroy_process_group (or at exit) once
    # the other had gone.
    dist.barrier()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
