"""Train-step time and peak memory per method on one backbone, same batch, one run.

    python -m experiments.bench [--model minilm_l6] [--batch 16] [--length 128] [--steps 10]

Each method runs in a fresh subprocess (so peak RSS is its own); the table prints the
median step time and peak memory with ratios to ``finetune`` and to HF PEFT's prefix
tuning (the independent reference implementation).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

CONF = Path(__file__).resolve().parents[1] / "conf"
REFERENCE = "peft_prefix_tuning"  # HF PEFT's prefix tuning, the independent implementation


def _measure(method: str, model: str, batch: int, length: int, steps: int, threads: int) -> dict:
    import torch
    from omegaconf import OmegaConf

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    from ptuning.backbones import load_backbone
    from ptuning.config import ModelConfig

    backbone = load_backbone(OmegaConf.merge(OmegaConf.structured(ModelConfig),
                                             OmegaConf.load(CONF / "model" / f"{model}.yaml")))
    ids = torch.randint(1000, 20000, (batch, length))
    mask = torch.ones(batch, length, dtype=torch.long)
    labels = torch.randint(0, 2, (batch,))
    if method == "peft_prefix_tuning":
        from peft import PrefixTuningConfig, get_peft_model
        from transformers import AutoModelForSequenceClassification

        location = backbone.model.name_or_path
        net = AutoModelForSequenceClassification.from_pretrained(location, num_labels=2)
        net = get_peft_model(net, PrefixTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=16))
        inputs = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    else:
        from ptuning.methods import build_method, method_config
        from ptuning.model import PromptedModel

        config = method_config({"name": method})
        if hasattr(config, "length"):
            config.length = 16
        net = PromptedModel(backbone, build_method(config, backbone), "classification", 2)
        inputs = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    net.train()
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    times = []
    for step in range(steps + 2):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        out = net(**inputs)
        loss = out["loss"] if isinstance(out, dict) else out.loss
        loss.backward()
        optimizer.step()
        if step >= 2:  # warm-up steps excluded
            times.append(time.perf_counter() - start)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"method": method, "step_s": statistics.median(times), "peak_mb": peak_mb,
            "trainable": sum(p.numel() for p in params)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm_l6")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--methods", default=None, help="comma list (default: every method, then PEFT's)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = _measure(args.worker, args.model, args.batch, args.length, args.steps, args.threads)
        print(json.dumps(result))
        return
    from ptuning.methods import METHODS

    methods = args.methods.split(",") if args.methods else [*METHODS, REFERENCE]
    rows = []
    for method in methods:
        cmd = [sys.executable, "-m", "experiments.bench", "--worker", method, "--model", args.model,
               "--batch", str(args.batch), "--length", str(args.length), "--steps", str(args.steps),
               "--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        if out.returncode != 0:
            sys.exit(f"bench: {method} failed:\n{out.stderr[-2000:]}")
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    by = {r["method"]: r for r in rows}
    ft, peft = by.get("finetune"), by.get(REFERENCE)
    print(f"model={args.model} batch={args.batch} length={args.length} threads={args.threads} "
          f"median of {args.steps} steps (after 2 warm-up), prompt/prefix length 16")
    print(f"{'method':20s} {'step s':>8s} {'x finetune':>10s} {'x PEFT':>8s} {'peak MB':>8s} "
          f"{'x finetune':>10s} {'trainable':>10s}")
    for r in rows:
        rt = f"{r['step_s'] / ft['step_s']:.2f}" if ft else "-"
        rp = f"{r['step_s'] / peft['step_s']:.2f}" if peft else "-"
        rm = f"{r['peak_mb'] / ft['peak_mb']:.2f}" if ft else "-"
        print(f"{r['method']:20s} {r['step_s']:8.3f} {rt:>10s} {rp:>8s} {r['peak_mb']:8.0f} {rm:>10s} "
              f"{r['trainable']:10d}")


if __name__ == "__main__":
    main()
