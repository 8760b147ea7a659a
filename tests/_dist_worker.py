"""Worker for tests/test_torch_distributed.py, one process per rank on loopback: trains a
small MLP with l2decay.torch.AdamW under DistributedDataParallel (optionally with
ZeroRedundancyOptimizer) and saves each rank's final parameters.

usage: python _dist_worker.py OUTDIR MODE RANK WORLD PORT
MODE: "ddp" (every rank holds the whole optimizer state), "zero" (state sharded over ranks),
"fsdp2" / "fsdp2-torch" (FSDP2's fully_shard: params, grads and state are DTensor shards, stepped by
l2decay.torch.AdamW / torch.optim.AdamW), "fsdp2:CASE" (FSDP2 with optimizer and dtype CASES[CASE]),
"dcp" (FSDP2 with a rule, saved after 10 steps with torch.distributed.checkpoint, loaded into a new
model and optimizer, trained on to STEPS) or "fsdp2-bad" (DTensors the step must refuse on every
rank, having changed nothing).
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
from l2decay import Decay

STEPS = 50
LR, WD = 1e-2, 0.1
# name: (the model's dtype, its optimizer), each run under FSDP2 and in one process
CASES = {
    "adamw": (torch.float32, lambda ps: lt.AdamW(ps, lr=LR, weight_decay=WD)),
    "sgd": (torch.float32, lambda ps: lt.SGD(ps, lr=LR, momentum=0.9, nesterov=True, weight_decay=WD)),
    "adam-decay-f64": (torch.float64, lambda ps: lt.Adam(ps, lr=LR, amsgrad=True, reg=Decay(1e-3))),
    "bf16-compensated": (torch.bfloat16, lambda ps: lt.AdamW(ps, lr=LR, weight_decay=WD, rounding="compensated",
                                                             state_dtype="param")),
}


def data(dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    return torch.randn(64, 8, generator=g).to(dtype), torch.randn(64, 2, generator=g).to(dtype)


def model(dtype=torch.float32):
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2)).to(dtype)


def train(net, opt, X, y):
    for _ in range(STEPS):
        opt.zero_grad()
        ((net(X) - y) ** 2).mean().backward()
        opt.step()


def single(case="adamw"):
    """One process on the whole batch: what two ranks on its halves must reproduce."""
    dtype, optimizer = CASES[case]
    net = model(dtype)
    X, y = data(dtype)
    train(net, optimizer(net.parameters()), X, y)
    return [p.detach().clone() for p in net.parameters()]


def fsdp2(optimizer_class, dtype=torch.float32, **kw):
    """The model with each Linear and the whole sharded by FSDP2, and its optimizer (a class,
    given lr=LR and `kw`, or a function of the params)."""
    from torch.distributed.fsdp import fully_shard
    net = model(dtype)
    for layer in net:
        if isinstance(layer, torch.nn.Linear):
            fully_shard(layer)
    fully_shard(net)
    if not isinstance(optimizer_class, type):
        return net, optimizer_class(net.parameters())
    return net, optimizer_class(net.parameters(), lr=LR, **kw)


def fsdp2_bad(X, y):
    """Each DTensor the step cannot take, beside FSDP2's own params: refused with its name on
    every rank, every param and state as before."""
    from torch.distributed.tensor import DTensor, Partial, Replicate, Shard, distribute_tensor, init_device_mesh
    net, _ = fsdp2(lt.AdamW, weight_decay=WD)
    ((net(X) - y) ** 2).mean().backward()
    params = list(net.parameters())
    mesh = params[0].device_mesh
    replicated = torch.nn.Parameter(distribute_tensor(torch.ones(4), mesh, [Replicate()]))
    replicated.grad = distribute_tensor(torch.ones(4), mesh, [Shard(0)])
    partial_grad = torch.nn.Parameter(distribute_tensor(torch.ones(4, 2), mesh, [Shard(0)]))
    partial_grad.grad = DTensor.from_local(torch.ones(4, 2), mesh, [Partial()])
    partial_param = torch.nn.Parameter(DTensor.from_local(torch.ones(4, 2), mesh, [Partial()]))
    partial_param.grad = DTensor.from_local(torch.ones(4, 2), mesh, [Partial()])
    meta_mesh = init_device_mesh("meta", (dist.get_world_size(),))
    on_meta = torch.nn.Parameter(DTensor.from_local(torch.zeros(2, 4, device="meta"), meta_mesh, [Shard(0)]))
    on_meta.grad = DTensor.from_local(torch.zeros(2, 4, device="meta"), meta_mesh, [Shard(0)])
    plain_meta = torch.nn.Parameter(torch.zeros(3, device="meta"))
    plain_meta.grad = torch.zeros(3, device="meta")
    cases = [(replicated, r"params\[4\]\.grad must be a DTensor laid out as its param \(\(Replicate\(\),\)"),
             (partial_grad, r"params\[4\]\.grad must be a DTensor laid out as its param .* got placed \(Partial"),
             (partial_param, r"params\[4\] is a DTensor placed \(Partial\(sum\),\): its local tensor is a partial"),
             (on_meta, r"params\[4\] is on meta"),
             (plain_meta, r"params\[4\] is on meta")]
    import re
    before = [p.to_local().clone() for p in params]
    for bad, message in cases:
        opt = lt.AdamW(params + [bad], lr=LR, weight_decay=WD)
        try:
            opt.step()
        except ValueError as exc:
            assert re.search(message, str(exc)), (message, str(exc))
        else:
            raise AssertionError(f"not refused: {message}")
        assert not any(opt.state.values()) and all(torch.equal(p.to_local(), b) for p, b in zip(params, before))
    return net


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
    dtype = CASES[mode[6:]][0] if mode.startswith("fsdp2:") else torch.float32
    X, y = data(dtype)
    half = X.shape[0] // world
    X, y = X[rank * half:(rank + 1) * half], y[rank * half:(rank + 1) * half]
    if mode.startswith("fsdp2") or mode == "dcp":
        if mode == "dcp":
            net = fsdp2_dcp(outdir, X, y)
        elif mode == "fsdp2-bad":
            net = fsdp2_bad(X, y)
        elif mode.startswith("fsdp2:"):
            net, opt = fsdp2(CASES[mode[6:]][1], dtype)
            train(net, opt, X, y)
            state = next(iter(opt.state.values()))
            assert all(type(t).__name__ == "DTensor" for t in state.values() if torch.is_tensor(t) and t.ndim)
            torch.save({k: (type(t).__name__, t.dtype) for k, t in state.items() if torch.is_tensor(t)},
                       os.path.join(outdir, f"{mode}-{rank}-states.pt"))
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
