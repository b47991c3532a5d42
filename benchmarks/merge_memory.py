"""M4: peak anonymous memory of a whole merge run vs one float32 model + its fitness forward.

A ~100M-parameter GPT-2-style model (transformers config, random init, no download) and 3
experts (base + seeded noise) are written as Hugging Face folders. Three child processes
each sample RssAnon from /proc/self/status every 2 ms (pages of memory-mapped files are
file pages: the kernel can evict and re-read them, so they do not count):

- ``reference``: load the model in float32 and run the fitness forward once (the bar's unit);
- ``bbopt``: a whole merge run — MergeProblem over the folders (experts memory-mapped in
  their own dtype, merged tensor by tensor into the model in place), per-layer genome,
  random search for ``--candidates`` candidates, perplexity fitness;
- ``old``: the previous path, same candidates: every expert's task vector held in memory as
  float32, each candidate's merged state dict built out of place and loaded into the model.

    python benchmarks/merge_memory.py [--candidates 4] [--layers 13]

Bar: peak(bbopt) ≤ 1.5 × peak(reference).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from _report import append, pin_threads, table

VOCAB, WIDTH, POSITIONS, N_TEXTS, TOKENS = 8192, 768, 128, 4, 64


def rss_anon_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    raise RuntimeError("no RssAnon in /proc/self/status (Linux only)")


class PeakSampler:
    """Peak RssAnon (kB) seen by a thread sampling every ``every`` seconds."""

    def __init__(self, every: float = 0.002):
        self.every, self.peak, self._stop = every, rss_anon_kb(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_anon_kb())
            time.sleep(self.every)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_anon_kb())


class IdTokenizer:
    """Texts of space-separated token ids (the benchmark's model has no real vocabulary)."""

    pad_token_id = 0

    def __call__(self, texts, truncation=True, max_length=None):
        return {"input_ids": [[int(t) for t in s.split()][:max_length] for s in texts]}


def texts(seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(map(str, rng.integers(1, VOCAB, TOKENS))) for _ in range(N_TEXTS)]


def build(root: Path, layers: int) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(vocab_size=VOCAB, n_embd=WIDTH, n_layer=layers, n_head=12, n_positions=POSITIONS, bos_token_id=0,
                     eos_token_id=0)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(cfg)
    model.save_pretrained(root / "base")
    base = {n: t.clone() for n, t in model.state_dict().items()}
    gen = torch.Generator().manual_seed(1)
    for k in range(3):
        with torch.no_grad():
            for n, t in model.state_dict().items():
                t.copy_(base[n] + 0.01 * torch.randn(t.shape, generator=gen))
        model.save_pretrained(root / f"expert{k}")


def child(mode: str, root: Path, candidates: int) -> dict:
    from bbopt.merge.hf import load_model
    from bbopt.merge.perplexity import Perplexity

    pin_threads(1)
    fitness = Perplexity(texts(), IdTokenizer(), batch_size=N_TEXTS, max_length=TOKENS)
    experts = [root / f"expert{k}" for k in range(3)]
    merge_s, fit_s, losses = [], [], []
    with PeakSampler() as s:
        if mode == "reference":
            module = load_model(root / "base")
            with torch.no_grad():  # the model held in anonymous memory, whatever the loader maps
                for t in module.parameters():
                    t.data = t.data.clone()
            t0 = time.perf_counter()
            losses.append(fitness.loss(module))
            fit_s.append(time.perf_counter() - t0)
        elif mode == "bbopt":
            from bbopt.problems.merging import MergeProblem

            p = MergeProblem(root / "base", experts, fitness, genome="per_layer")
            for x in p.space.sample(np.random.default_rng(0), candidates):
                t0 = time.perf_counter()
                module = p.model_at(x)
                t1 = time.perf_counter()
                losses.append(fitness.loss(module))
                merge_s.append(t1 - t0)
                fit_s.append(time.perf_counter() - t1)
        else:
            losses, merge_s, fit_s = old_path(root, experts, fitness, candidates)
    return {"mode": mode, "peak_mb": s.peak / 1024, "merge_s": float(np.median(merge_s)) if merge_s else 0.0,
            "fitness_s": float(np.median(fit_s)), "losses": [float(v) for v in losses]}


def old_path(root: Path, experts: list[Path], fitness, candidates: int) -> tuple[list[float], list, list]:
    """Before: τ_k = θ_k − θ₀ in float32 for every expert, held in memory; merges out of place."""
    from safetensors.torch import load_file

    from bbopt.merge.genome import preset
    from bbopt.merge.hf import load_model

    module = load_model(root / "base")
    base = {n: t.float() for n, t in load_file(root / "base" / "model.safetensors").items()}
    taus = [{n: t.float() - base[n] for n, t in load_file(e / "model.safetensors").items()} for e in experts]
    names = [n for n in base if base[n].is_floating_point()]
    genome = preset("per_layer").bind(names, len(experts))
    losses, merge_s, fit_s = [], [], []
    for x in genome.space.sample(np.random.default_rng(0), candidates):
        t0 = time.perf_counter()
        w = genome.decode(x).weight
        merged = {n: base[n] + sum(float(w[j, k]) * taus[k][n] for k in range(len(taus))) for j, n in enumerate(names)}
        module.load_state_dict(merged, strict=False)
        del merged
        t1 = time.perf_counter()
        losses.append(fitness.loss(module))
        merge_s.append(t1 - t0)
        fit_s.append(time.perf_counter() - t1)
    return losses, merge_s, fit_s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--candidates", type=int, default=4)
    ap.add_argument("--layers", type=int, default=13)
    ap.add_argument("--child", choices=["reference", "bbopt", "old"])
    ap.add_argument("--root")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, Path(args.root), args.candidates)))
        return
    with tempfile.TemporaryDirectory(prefix="bbopt-m4-") as tmp:
        root = Path(tmp)
        build(root, args.layers)
        n_params = sum(t.numel() for t in __import__("safetensors.torch", fromlist=["load_file"])
                       .load_file(root / "base" / "model.safetensors").values())
        runs: dict = {}
        for mode in ("reference", "bbopt", "old"):
            out = subprocess.run([sys.executable, __file__, "--child", mode, "--root", str(root), "--candidates",
                                  str(args.candidates)], capture_output=True, text=True, check=True)
            runs[mode] = json.loads(out.stdout.strip().splitlines()[-1])
            print(runs[mode], flush=True)
    ref = runs["reference"]["peak_mb"]
    assert np.allclose(runs["bbopt"]["losses"], runs["old"]["losses"], rtol=1e-4), "the two paths disagree"
    rows = [[mode, f"{r['peak_mb']:.0f}", f"{r['peak_mb'] / ref:.2f}", f"{r['merge_s']:.2f}", f"{r['fitness_s']:.2f}",
             f"{r['merge_s'] + r['fitness_s']:.2f}"] for mode, r in runs.items()]
    ratio = runs["bbopt"]["peak_mb"] / ref
    append("M4 — peak anonymous memory of a merge run (~100M params, 3 experts)",
           table(["process", "peak RssAnon MB", "× reference", "merge s", "fitness s", "s per candidate"], rows),
           f"GPT-2-style model, {n_params / 1e6:.1f}M parameters (vocab {VOCAB}, width {WIDTH}, {args.layers} "
           f"layers), float32 folders; 3 experts = base + N(0, 0.01²) noise; per-layer task-arithmetic genome, "
           f"{args.candidates} random candidates (the same in both merge paths; losses agree to 1e-4); fitness: "
           f"perplexity on {N_TEXTS} texts × {TOKENS} tokens in one batch. Each child process runs torch on 1 "
           f"thread (the machine line is the parent's). RssAnon sampled every 2 ms in each "
           f"process (medians over the candidates for the times). reference = the float32 model, its parameters copied into "
           f"anonymous memory (transformers may leave them mapped from the file), + one fitness forward. Bar M4: bbopt ≤ 1.5 × reference: "
           f"{ratio:.2f} — {'met' if ratio <= 1.5 else 'NOT met'}.")


if __name__ == "__main__":
    main()
