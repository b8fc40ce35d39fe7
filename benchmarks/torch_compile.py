"""Does torch.compile pay for itself on DeepMerge training? Compile time and steps/s, compiled vs eager.

Both run the same training step (DeepMerge, cross-entropy, Adam; random 75x75x3 batches) in one process,
in interleaved blocks so that machine noise hits both; prints a table and writes JSON.

    python benchmarks/torch_compile.py                  # 1 thread, batch 128, 3 rounds of 5 steps
    python benchmarks/torch_compile.py --threads 2 --rounds 5
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch
import torch.nn.functional as F

from deepmerge_da.io.atomic import write_text_atomic
from deepmerge_da.nn.models import build_network
from deepmerge_da.training.loop import compile_for_training


def make_step(compiled: bool, x: torch.Tensor, y: torch.Tensor):
    model = build_network("deepmerge")
    optimizer = torch.optim.Adam(model.parameters())
    forward = compile_for_training(model) if compiled else model  # as training.compile: true does

    def step() -> None:
        logits, _ = forward(x)
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5, help="steps per timed block")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved (eager, compiled) block pairs")
    parser.add_argument("--out", default="benchmarks/results/torch_compile.json")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.batch_size, 3, 75, 75)
    y = torch.randint(0, 2, (args.batch_size,))
    started = time.perf_counter()
    compiled = make_step(True, x, y)
    compiled()  # compiles forward and backward
    compile_seconds = time.perf_counter() - started
    eager = make_step(False, x, y)
    eager()
    rates = {"eager": [], "compiled": []}
    for _ in range(args.rounds):
        for name, step in (("eager", eager), ("compiled", compiled)):
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step()
            rates[name].append(args.steps * args.batch_size / (time.perf_counter() - t0))
    best = {name: max(values) for name, values in rates.items()}
    result = {"threads": args.threads, "batch_size": args.batch_size, "compile_and_first_step_s": compile_seconds,
              "images_per_s": rates, "best_images_per_s": best, "speedup": best["compiled"] / best["eager"],
              "loadavg": os.getloadavg(), "torch": torch.__version__}
    print(f"compile + first step: {compile_seconds:.1f} s")
    print("round  eager img/s  compiled img/s")
    for i, (e, c) in enumerate(zip(rates["eager"], rates["compiled"], strict=True)):
        print(f"{i:5d}  {e:11.0f}  {c:14.0f}")
    print(f"best: eager {best['eager']:.0f}, compiled {best['compiled']:.0f} img/s -> {result['speedup']:.2f}x; "
          f"compiling pays off after {compile_seconds / max(1e-9, 1 / best['eager'] - 1 / best['compiled']):.0f} "
          "training images" if best["compiled"] > best["eager"] else "compiled is not faster")
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
