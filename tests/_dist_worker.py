"""Worker for tests/test_torch_distributed.py, one process per rank on loopback: trains a
small MLP with l2decay.torch.AdamW under DistributedDataParallel (optionally with
ZeroRedundancyOptimizer) and saves each rank's final parameters.

usage: python _dist_worker.py OUTDIR MODE RANK WORLD PORT
MODE: "ddp" (every rank holds the whole optimizer state), "zero" (state sharded over ranks),
"fsdp2" / "fsdp2-torch" (FSDP2's fully_shard: params, grads and state are DTensor shards, stepped by
l2decay.torch.AdamW / torch.optim.AdamW) or "dcp" (FSDP2 with a rule, saved after 10 steps with
torch.distributed.checkpoint, loaded into a new model and optimizer, trained on to STEPS).
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


def fsdp2(optimizer_class, **kw):
    """The model with each Linear and the whole sharded by FSDP2, and its optimizer."""
    from torch.distributed.fsdp import fully_shard
    net = model()
    for layer in net:
        if isinstance(layer, torch.nn.Linear):
            fully_shard(layer)
    fully_shard(net)
    return net, optimizer_class(net.parameters(), lr=LR, **kw)


def fsdp2_dcp(outdir, X, y):
    """STEPS steps, of which the last STEPS - 10 after a save and load through DCP."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
    from l2decay import Decoupled
    net, opt = fsdp2(lt.AdamW, reg=Decoupled(WD))
    for step in range(10):
        opt.zero_grad()
        ((net(X) - y) ** 2).mean().backward()
        opt.step()
    model_sd, optim_sd = get_state_dict(net, opt)
    dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=os.path.join(outdir, "dcp"))
    net, opt = fsdp2(lt.AdamW)     # (its rule comes from the checkpoint)
    model_sd, optim_sd = get_state_dict(net, opt)
    state = {"model": model_sd, "optim": optim_sd}
    dcp.load(state, checkpoint_id=os.path.join(outdir, "dcp"))
    set_state_dict(net, opt, model_state_dict=state["model"], optim_state_dict=state["optim"])
    assert opt.param_groups[0]["reg"] == Decoupled(WD)
    for _ in range(STEPS - 10):
        opt.zero_grad()
        ((net(X) - y) ** 2).mean().backward()
        opt.step()
    return net


def main(outdir, mode, rank, world, port):
    faulthandler.dump_traceback_later(80, exit=True)   # a hang shows where, then ends
    torch.set_num_threads(1)
    # loopback only: the rendezvous on 127.0.0.1, and gloo's sockets on the lo interface
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=120))
    X, y = data()
    half = X.shape[0] // world
    X, y = X[rank * half:(rank + 1) * half], y[rank * half:(rank + 1) * half]
    if mode.startswith("fsdp2") or mode == "dcp":
        if mode == "dcp":
            net = fsdp2_dcp(outdir, X, y)
        else:
            net, opt = fsdp2(lt.AdamW if mode == "fsdp2" else torch.optim.AdamW, weight_decay=WD)
            train(net, opt, X, y)
        assert all(type(p).__name__ == "DTensor" for p in net.parameters())
        final = [p.full_tensor().detach().clone() for p in net.parameters()]
    else:
        net = DistributedDataParallel(model())
        if mode == "zero":
            opt = ZeroRedundancyOptimizer(net.parameters(), optimizer_class=lt.AdamW, lr=LR, weight_decay=WD)
        else:
            opt = lt.AdamW(net.parameters(), lr=LR, weight_decay=WD)
        train(net, opt, X, y)
        final = [p.detach().clone() for p in net.module.parameters()]
    torch.save(final, os.path.join(outdir, f"{mode}-{rank}.pt"))
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
