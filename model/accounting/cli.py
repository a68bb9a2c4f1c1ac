"""`python -m model.accounting CONFIG.json|MODEL_DIR [--seq-len N] [--batch B] [--dtype D] [--json]`

    python -m model.accounting checkpoints/gqa-rope/config.json --seq-len 256 --json
    python -m model.accounting llama2_7b_config.json --seq-len 4096 --dtype fp16
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional

from model.accounting.counts import KV_FORMATS, gib_text, report
from model.accounting.hf_configs import FAMILIES, arch_from_json_file

# --------------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------------


def _table(r: dict) -> str:
    a = r["arch"]
    lines = [
        f"{r['name']}: V={a['vocab_size']} d={a['d_model']} L={a['n_layers']} nh={a['n_heads']} "
        f"nkv={a['n_kv_heads']} hd={a['head_dim']} m={a['d_mlp']} ({a['mlp']} MLP, {a['norm']}, {a['positions']}, "
        f"{'tied' if a['tie_embeddings'] else 'untied'})",
        "",
        "parameters",
    ]
    lines += [f"  {k:<22}{v:>26,}" for k, v in r["params"].items()]
    lines += [f"  {'total':<22}{r['total_params']:>26,}"]
    if r["active_params"] != r["total_params"]:  # a mixture of experts: the k experts a token uses
        lines.append(f"  {'active per token':<22}{r['active_params']:>26,}   (router + k of E experts + the rest)")
    lines += ["",
              f"forward FLOPs, prefill of {r['seq_len']} tokens × batch {r['batch']} (FlopCounterMode convention)"]
    lines += [f"  {k:<22}{v:>26,}" for k, v in r["forward_flops_breakdown"].items()]
    lines += [
        f"  {'total':<22}{r['forward_flops']:>26,}",
        f"  {'causal-aware total':<22}{r['forward_flops_causal']:>26,}",
        f"  {'Narayanan et al. 2021':<22}{r['megatron_forward_flops']:>26,}   (24bsd² + 4bs²d)L + 2bsdV",
        f"  {'Kaplan et al. 2020':<22}{r['kaplan_forward_flops']:>26,}   bs·(2N + 2·L·s·d_attn), no unembedding",
        f"  {'decode step, cached':<22}{r['decode_step_flops_cached']:>26,}   (context {r['seq_len']})",
        f"  {'decode step, no cache':<22}{r['decode_step_flops_recompute']:>26,}   (every layer at every position, "
        "logits at the last)",
        f"  {'training step (3×)':<22}{r['training_step_flops']:>26,}",
        f"  {'Kaplan et al. 6N':<22}{r['kaplan_training_flops']:>26,}   6·N·b·s, N = {r['non_embedding_params']:,} "
        "non-embedding parameters",
        "",
        "memory",
    ]
    for k, m in r["weight_memory"].items():
        lines.append(f"  {'weights ' + k:<28}{m['total']:>20,} B  = {gib_text(m['total'])}  "
                     f"({m['bits_per_param']:.3f} bits/parameter)")
    kept = ", ".join(r["kept_at_fp16_when_quantized"])
    lines += [  # say what the quantized rows count, so a bare "int4" is never read as 4 bits a parameter
        "  quantized rows count every code (4-bit codes two to a byte) and one fp16 scale per output row (int8)",
        "  or per block of G weights, for the attention and MLP matrices; no format here has zero points;",
        f"  kept at fp16: {kept}",
    ]
    lines += [
        f"  {'KV cache / token':<22}{r['kv_cache_bytes_per_token']:>26,} B  ({r['dtype']})",
        f"  {'KV cache, s × b':<22}{r['kv_cache_bytes']:>26,} B  = {gib_text(r['kv_cache_bytes'])}",
    ]
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description="Exact parameters, FLOPs and memory of a decoder-only transformer.")
    p.add_argument("config", help=f"a Hugging Face config.json ({', '.join(FAMILIES)}) "
                                  "or one of our ModelConfig JSONs (checkpoints/<variant>/config.json), "
                                  "or a model folder holding a config.json")
    p.add_argument("--seq-len", type=int, default=None, help="tokens in the prefill (default: the model's context)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--dtype", default="bf16", choices=list(KV_FORMATS), help="for the KV cache figures")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    try:
        arch = arch_from_json_file(args.config)
        r = report(arch, args.seq_len if args.seq_len is not None else arch.max_seq_len, args.batch, args.dtype)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(r, indent=1) if args.json else _table(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
