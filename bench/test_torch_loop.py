"""The optimizer step inside a training loop: a GPT-2 of 6 layers of 384 (13.9M params), built
from a transformers config (no download), float32.  Each round's zero_grad, forward and backward
run untimed (pytest-benchmark's pedantic setup), then one step is timed: the caches and the
fresh grads are what a training loop leaves the optimizer, not a loop of steps alone."""
import copy

import pytest

from l2decay import bench
from benchutil import SMOKE

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

CONFIG = dict(n_layer=1, n_embd=8, n_head=2, vocab_size=32, n_positions=16) if SMOKE else \
    dict(n_layer=6, n_embd=384, n_head=6, vocab_size=8192, n_positions=256)
ROUNDS = 2 if SMOKE else 40
_BASE = []


def _model():
    if not _BASE:    # one initial model for every implementation
        torch.manual_seed(0)
        _BASE.append(transformers.GPT2LMHeadModel(transformers.GPT2Config(**CONFIG)))
    return copy.deepcopy(_BASE[0])


@pytest.mark.parametrize("impl", [i for i in bench.TORCH_IMPLS if i != "deepspeed"])
def test_gpt2_step_in_loop(benchmark, impl):
    model = _model()
    hyper = dict(lr=1e-4, weight_decay=0.1)
    if impl == "l2decay":
        import l2decay.torch as lt
        opt = lt.AdamW(model.parameters(), **hyper)
    else:
        opt = torch.optim.AdamW(model.parameters(), **hyper, **({"fused": True} if impl == "torch fused"
                                                                   else {"foreach": True}))
    tokens = torch.randint(0, CONFIG["vocab_size"], (4, 64 if not SMOKE else 8),
                           generator=torch.Generator().manual_seed(1))

    def forward_backward():
        opt.zero_grad()
        model(tokens, labels=tokens).loss.backward()

    forward_backward()
    opt.step()         # state made outside the timing
    benchmark.group = "gpt2 6x384 AdamW step in a training loop"
    benchmark.extra_info["n"] = sum(p.numel() for p in model.parameters())
    benchmark.pedantic(opt.step, setup=forward_backward, rounds=ROUNDS, iterations=1, warmup_rounds=2)
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
