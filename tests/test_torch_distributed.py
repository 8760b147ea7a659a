"""l2decay.torch across processes on torch's own engine: DistributedDataParallel with two
ranks (gloo on loopback), ZeroRedundancyOptimizer sharding l2decay's AdamW state, FSDP2
(fully_shard: DTensor params, grads and state) and torch.distributed.checkpoint."""
import os
import socket
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():  # pragma: no cover
    pytest.skip("torch.distributed is not available", allow_module_level=True)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import _dist_worker  # noqa: E402


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(tmp_path, mode, world=2, attempts=3, timeout=90):
    """One process per rank, rendezvous on a free loopback port; their outputs on failure.

    A run takes about 3 s. The workers leave without tearing gloo down (a rank hung there in
    about one run in four, results written); should a launch hang all the same, it is killed
    after `timeout` and started again on another port, at most `attempts` times (a real failure
    still fails every attempt)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for attempt in range(attempts):
        port = _free_port()
        procs = [subprocess.Popen([sys.executable, os.path.join(HERE, "_dist_worker.py"), str(tmp_path), mode,
                                   str(rank), str(world), str(port)],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for rank in range(world)]
        outs, hung = [], False
        for p in procs:
            try:
                outs.append(p.communicate(timeout=timeout)[0])
            except subprocess.TimeoutExpired:
                hung = True
                for q in procs:
                    q.kill()
                outs.append(p.communicate()[0])
        # (a rank's faulthandler ends it, with its stack, before our timeout: a hang too)
        if not hung and not any("Timeout (" in o for o in outs):
            break
    assert all(p.returncode == 0 for p in procs), "\n".join(o[-3000:] for o in outs)
    return [torch.load(tmp_path / f"{mode}-{r}.pt") for r in range(world)]


@pytest.fixture(scope="module")
def single():
    return _dist_worker.single()


@pytest.fixture(scope="module")
def ddp(tmp_path_factory):
    return _launch(tmp_path_factory.mktemp("ddp"), "ddp")


def test_ddp_ranks_agree_and_match_one_process_on_the_whole_batch(ddp, single):
    rank0, rank1 = ddp
    for a, b, c in zip(rank0, rank1, single):
        assert torch.equal(a, b)
        torch.testing.assert_close(a, c, rtol=0, atol=1e-6)


def test_zero_redundancy_optimizer_shards_l2decay_adamw(tmp_path, ddp, single):
    rank0, rank1 = _launch(tmp_path, "zero")
    states = [torch.load(tmp_path / f"zero-{r}-states.pt") for r in range(2)]
    assert sum(states) == len(single) and 0 < states[0] < len(single)   # really sharded
    for a, b, c in zip(rank0, rank1, ddp[0]):
        assert torch.equal(a, b)
        torch.testing.assert_close(a, c, rtol=0, atol=1e-6)


def test_fsdp2_shards_train_as_torch_adamw_and_one_process(tmp_path, single):
    mine = _launch(tmp_path, "fsdp2")
    theirs = _launch(tmp_path, "fsdp2-torch")
    for a, b, c, d in zip(mine[0], mine[1], theirs[0], single):
        assert torch.equal(a, b)                         # the full params, gathered on each rank
        torch.testing.assert_close(a, c, rtol=0, atol=1e-6)
        torch.testing.assert_close(a, d, rtol=0, atol=1e-6)


FSDP2_CASES = {"sgd": 1e-6, "adam-decay-f64": 1e-12, "bf16-compensated": 2e-2}


@pytest.mark.parametrize("case", list(FSDP2_CASES))
def test_fsdp2_shards_train_as_one_process_with_rules_dtypes_and_state_dtype(tmp_path, case):
    dtype, _ = _dist_worker.CASES[case]
    ranks = _launch(tmp_path, f"fsdp2:{case}")
    one = _dist_worker.single(case)
    for a, b, c in zip(ranks[0], ranks[1], one):
        assert torch.equal(a, b) and a.dtype == dtype
        torch.testing.assert_close(a.double(), c.double(), rtol=0, atol=FSDP2_CASES[case])
    states = torch.load(tmp_path / f"fsdp2:{case}-0-states.pt")
    if case == "bf16-compensated":     # state_dtype="param": moments in bfloat16, and the compensation
        assert states["exp_avg"] == states["exp_avg_sq"] == states["compensation"] == ("DTensor", torch.bfloat16)
    elif case == "sgd":
        assert states["momentum_buffer"] == ("DTensor", torch.float32)
    else:
        assert states["max_exp_avg_sq"] == ("DTensor", torch.float64)


def test_fsdp2_refuses_dtensors_it_cannot_step_on_every_rank_changing_nothing(tmp_path):
    _launch(tmp_path, "fsdp2-bad")     # (each rank asserts each refusal and that nothing changed)


def test_fsdp2_resumes_bit_identically_from_a_distributed_checkpoint(tmp_path):
    straight = _launch(tmp_path, "fsdp2")
    resumed = _launch(tmp_path, "dcp")
    for a, b in zip(straight[0], resumed[0]):
        assert torch.equal(a, b)
