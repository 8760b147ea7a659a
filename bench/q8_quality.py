"""Training quality of 8-bit optimizer state: a small GPT-2 (2 layers of 128, byte vocabulary,
built from a transformers config, no download) trained on this repository's docs, l2decay.torch's
AdamW with float32 state against 8-bit state, same seeds and batches.  Prints the loss curves
(every 25 steps), each run's final loss (mean of the last 25 steps) and the 8-bit moments'
quantization error on the float32 run's final moments.

usage: python bench/q8_quality.py [STEPS] [SEEDS]      (not part of any test run; a few minutes)
"""
import pathlib
import statistics
import sys

import numpy as np
import torch
import transformers

import l2decay.torch as lt
from l2decay import q8

STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 300
SEEDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
ROOT = pathlib.Path(__file__).resolve().parents[1]
TEXT = np.frombuffer(b"".join(p.read_bytes() for p in sorted((ROOT / "docs").glob("*.md"))), np.uint8)


def run(seed, state_dtype):
    torch.manual_seed(seed)
    config = transformers.GPT2Config(n_layer=2, n_embd=128, n_head=4, vocab_size=256, n_positions=64)
    model = transformers.GPT2LMHeadModel(config)
    opt = lt.AdamW(model.parameters(), lr=3e-3, weight_decay=0.1, state_dtype=state_dtype)
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(STEPS):
        starts = rng.integers(0, TEXT.size - 65, 16)
        batch = torch.from_numpy(np.stack([TEXT[s:s + 64] for s in starts]).astype(np.int64))
        opt.zero_grad()
        loss = model(batch, labels=batch).loss
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, opt


def main():
    torch.set_num_threads(2)
    finals = {None: [], "8bit": []}
    errors = []
    for seed in range(SEEDS):
        for state_dtype in (None, "8bit"):
            losses, opt = run(seed, state_dtype)
            finals[state_dtype].append(statistics.fmean(losses[-25:]))
            curve = " ".join(f"{statistics.fmean(losses[i:i + 25]):.3f}" for i in range(0, STEPS, 25))
            print(f"seed {seed} {state_dtype or 'float32'}: {curve}")
            if state_dtype is None:      # the 8-bit code's error on these moments
                for st in opt.state.values():
                    for key, signed in (("exp_avg", True), ("exp_avg_sq", False)):
                        x = st[key].detach().numpy().reshape(-1)
                        back = q8.decode(*q8.encode(x, signed), signed)
                        big = np.abs(x) > 1e-3 * np.abs(x).max()
                        errors.append(np.abs(back - x)[big] / np.abs(x)[big])
    f32, b8 = statistics.fmean(finals[None]), statistics.fmean(finals["8bit"])
    err = np.concatenate(errors)
    print(f"final loss, mean over {SEEDS} seeds: float32 state {f32:.4f} (seeds {', '.join(f'{x:.4f}' for x in finals[None])}),"
          f" 8-bit state {b8:.4f} ({', '.join(f'{x:.4f}' for x in finals['8bit'])}): {100 * (b8 / f32 - 1):+.2f}%")
    print(f"8-bit code on the float32 run's final moments (values above 1e-3 of their tensor's largest): relative "
          f"error median {np.median(err):.4f}, 99th percentile {np.quantile(err, 0.99):.4f}, max {err.max():.4f}")


if __name__ == "__main__":
    main()
