"""l2decay.torch across processes on torch's own engine: DistributedDataParallel with two
ranks (gloo on loopback) and ZeroRedundancyOptimizer sharding l2decay's AdamW state."""
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


def _launch(tmp_path, mode, world=2):
    """One process per rank, rendezvous on a free loopback port; their outputs on failure."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, os.path.join(HERE, "_dist_worker.py"), str(tmp_path), mode,
                               str(rank), str(world), str(port)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank in range(world)]
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=240)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            outs.append(p.communicate()[0])
    assert all(p.returncode == 0 for p in procs), "\n".join(o[-3000:] for o in outs)
    return [torch.load(tmp_path / f"{mode}-{r}.pt") for r in range(world)]


@pytest.fixture(scope="module")
def single():
    return _dist_worker.single()


def test_ddp_ranks_agree_and_match_one_process_on_the_whole_batch(tmp_path, single):
    rank0, rank1 = _launch(tmp_path, "ddp")
    for a, b, c in zip(rank0, rank1, single):
        assert torch.equal(a, b)
        torch.testing.assert_close(a, c, rtol=0, atol=1e-6)


def test_zero_redundancy_optimizer_shards_l2decay_adamw(tmp_path, single):
    rank0, rank1 = _launch(tmp_path, "zero")
    states = [torch.load(tmp_path / f"zero-{r}-states.pt") for r in range(2)]
    assert sum(states) == len(single) and 0 < states[0] < len(single)   # really sharded
    ddp0, _ = _launch(tmp_path, "ddp")
    for a, b, c in zip(rank0, rank1, ddp0):
        assert torch.equal(a, b)
        torch.testing.assert_close(a, c, rtol=0, atol=1e-6)
