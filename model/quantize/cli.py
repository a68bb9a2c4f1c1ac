"""`python -m model.quantize`: quantize a shipped variant, and measure what it costs and saves.

    python -m model.quantize --variant gqa-rope --bits 8 --json                 # per-channel int8
    python -m model.quantize --variant gqa-rope --bits 4 --group-size 64 --json
    python -m model.quantize --variant gqa-rope --bits 4 --windows 8 --kv-int8   # quick: 8 held-out windows
    python -m model.quantize --out results/quantization.json                    # every format + speed (the page's file)

One format (`--bits`): bytes before (fp32 as run, fp16 as shipped) and after (codes + scales + the tensors
kept at fp16), bits per weight including the scales, held-out loss before and after (paired over the same
windows), and each layer's and matrix's relative weight error ‖W − Q(W)‖/‖W‖. Without `--bits`, all of
`FORMATS` plus the Q8_0 KV cache, torch's dynamic int8 model and its measured speed — what
results/quantization.json holds (≈ 2–3 min on one thread).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Optional

RESULTS_PATH = Path(__file__).resolve().parents[2] / "results" / "quantization.json"


def format_entry(model, fmt, windows, fp32_losses, chars_per_token) -> dict:
    """Everything about one format on one model: bytes, bits, held-out loss against fp32, error per layer."""
    from model.quantize.apply import quantized_copy
    from model.quantize.measure import loss_entry, window_losses

    q, rep = quantized_copy(model, fmt)
    layers = []
    for i in range(model.cfg.n_layers):
        mats = [m for m in rep.matrices if m.name.startswith(f"blocks.{i}.")]
        err2 = sum((m.rel_error * m.weight_norm) ** 2 for m in mats)
        layers.append({"layer": i, "rel_error": round(math.sqrt(err2 / sum(m.weight_norm ** 2 for m in mats)), 6)})
    entry = {
        "format": asdict(fmt),
        "bytes": rep.bytes,
        "bits_per_weight": round(rep.bits_per_weight, 4),
        "bits_per_param": round(rep.bits_per_param, 4),
        "layers": layers,
        "matrices": [{"name": m.name, "shape": list(m.shape), "rel_error": round(m.rel_error, 6),
                      "max_error": round(m.max_error, 6)} for m in rep.matrices],
    }
    if windows is not None:
        entry["heldout"] = loss_entry(window_losses(q, windows), chars_per_token, fp32_losses)
    return entry


def run(variant: str, formats: list, n_windows: Optional[int] = None, kv_int8: bool = False,
        torch_dynamic: bool = False, speed: bool = False, repeats: int = 7, command: str = "") -> dict:
    import torch

    from model.evaluation.evaluate import cpu_name
    from model.net.checkpoints import load_variant
    from model.quantize.measure import loss_entry, measure_speed, torch_int8, window_losses
    from model.text.batches import encoded_split, val_windows

    t0 = time.time()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = load_variant(variant)
        val_ids, val_chars = encoded_split("val")
        cpt = val_chars / len(val_ids)
        windows = val_windows(val_ids, model.cfg.max_seq_len)[:n_windows]
        n_params = sum(p.numel() for p in model.parameters())
        out = {
            "command": command, "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "torch": torch.__version__, "python": platform.python_version(), "cpu": cpu_name(), "threads": 1,
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()], "variant": variant,
            "heldout": {"split": "val", "windows": int(len(windows)), "tokens": int(windows[:, 1:].size),
                        "chars_per_token": round(cpt, 4), "all_windows": n_windows is None},
        }
        fp32 = window_losses(model, windows)
        out["fp32"] = {"bytes": {"fp32": 4 * n_params, "fp16": 2 * n_params}, "params": n_params,
                       "heldout": loss_entry(fp32, cpt)}
        out["formats"] = {f.name: format_entry(model, f, windows, fp32, cpt) for f in formats}
        if kv_int8:
            from model.accounting.arch import arch_from_model_config
            from model.accounting.counts import kv_cache_bytes_per_token

            a = arch_from_model_config(model.cfg)
            out["kv_int8"] = {"format": "Q8_0 (KV cache)",
                              "heldout": loss_entry(window_losses(model, windows, kv_int8=True), cpt, fp32),
                              "bytes_per_token": {"fp32": kv_cache_bytes_per_token(a, "fp32"),
                                                  "Q8_0": kv_cache_bytes_per_token(a, "Q8_0")}}
        if torch_dynamic:
            q = torch_int8(model)
            out["torch_dynamic_int8"] = (
                {"heldout": loss_entry(window_losses(q, windows), cpt, fp32),
                 "note": "weights int8 per channel and each Linear's input int8 per call (per tensor)"}
                if q is not None else {"unavailable": "torch.ao.quantization is not available"})
        if speed:
            out["speed"] = measure_speed(model, repeats=repeats)
        out["elapsed_s"] = round(time.time() - t0, 1)
        return out
    finally:
        torch.set_num_threads(threads)


def _table(r: dict) -> str:
    h = r["heldout"]
    f = r["fp32"]
    lines = [f"{r['variant']}: held-out loss on {h['windows']} windows ({h['tokens']:,} tokens), one thread", "",
             f"{'format':<22}{'bytes':>12}{'bits/weight':>13}{'nats/token':>12}{'Δ vs fp32':>12}{'ppl':>8}",
             f"{'fp32':<22}{f['bytes']['fp32']:>12,}{32:>13}{f['heldout']['nats_per_token']:>12.4f}{'':>12}"
             f"{f['heldout']['perplexity']:>8.2f}",
             f"{'fp16 (as shipped)':<22}{f['bytes']['fp16']:>12,}{16:>13}"]
    for name, e in r["formats"].items():
        ho = e.get("heldout", {})
        lines.append(f"{name:<22}{e['bytes']['total']:>12,}{e['bits_per_weight']:>13.3f}"
                     f"{ho.get('nats_per_token', float('nan')):>12.4f}{ho.get('delta_nats', float('nan')):>+12.4f}"
                     f"{ho.get('perplexity', float('nan')):>8.2f}")
    if "kv_int8" in r:
        ho = r["kv_int8"]["heldout"]
        lines.append(f"{'+ Q8_0 KV cache':<22}{'':>12}{'':>13}{ho['nats_per_token']:>12.4f}{ho['delta_nats']:>+12.4f}"
                     f"{ho['perplexity']:>8.2f}")
    for name, e in r["formats"].items():
        lines.append(f"\n{name}: relative weight error per layer  "
                     + "  ".join(f"L{x['layer']} {x['rel_error']:.4f}" for x in e["layers"]))
    if "speed" in r and r["speed"].get("cases"):
        lines.append(f"\nspeed, one thread, median of {r['speed']['repeats']} (torch engine {r['speed']['engine']})")
        for case, c in r["speed"]["cases"].items():
            lines.append(f"  {case:<26} fp32 {c['fp32']['median_ms']:>9.2f} ms   int8 {c['int8']['median_ms']:>9.2f} ms"
                         f"   fp32/int8 {c['speedup']:.2f}×")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    from model.net.checkpoints import DEFAULT_VARIANT, VARIANTS, available_variants
    from model.quantize.formats import FORMATS, format_for

    p = argparse.ArgumentParser(description="Quantize a shipped variant; bytes, bits per weight, held-out loss.")
    p.add_argument("--variant", default=DEFAULT_VARIANT, choices=list(VARIANTS))
    p.add_argument("--bits", type=int, choices=[8, 4], default=None,
                   help="one format: 8 = int8 per output channel (or Q8_0-style blocks with --group-size), "
                        "4 = Q4_0's rule in groups; without it, every format, the KV cache and the speed")
    p.add_argument("--group-size", type=int, default=None, help="weights per scale along a row (4 bits: 32)")
    p.add_argument("--windows", type=int, default=None, help="held-out windows to score (default: all 465)")
    p.add_argument("--kv-int8", action="store_true", help="also the loss with the KV cache at Q8_0")
    p.add_argument("--speed", action="store_true", help="also time fp32 vs torch's int8 kernels")
    p.add_argument("--repeats", type=int, default=7, help="timings per case (median reported)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON here (the page reads "
                                                           "results/quantization.json)")
    a = p.parse_args(argv)
    try:
        if a.variant not in available_variants():
            raise ValueError(f"no checkpoint for {a.variant} in this checkout")
        if a.group_size is not None and a.group_size < 1:
            raise ValueError("--group-size must be >= 1")
        if a.windows is not None and a.windows < 2:
            raise ValueError("--windows must be >= 2 (the paired difference needs two)")
        if a.repeats < 1:
            raise ValueError("--repeats must be >= 1")
        sweep = a.bits is None
        if sweep and a.group_size is not None:
            raise ValueError("--group-size needs --bits")
        formats = list(FORMATS.values()) if sweep else [format_for(a.bits, a.group_size)]
        args = argv if argv is not None else sys.argv[1:]
        command = "python -m model.quantize " + " ".join(shlex.quote(x) for x in args)
        r = run(a.variant, formats, a.windows, kv_int8=sweep or a.kv_int8, torch_dynamic=sweep,
                speed=sweep or a.speed, repeats=a.repeats, command=command)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = json.dumps(r, indent=1)
    if a.out is not None:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text + "\n")
    print(text if a.json else _table(r))
    return 0
