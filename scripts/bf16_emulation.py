#!/usr/bin/env python3
"""NumPy emulation of a bf16 CUDA LoRA backend against the Hugging Face reference fixtures.

Purpose: derive a *justified* logit tolerance for GPU (bf16) LoRA tests.  For each fixture
variant (``llama-gqa``, ``qwen2-bias``), tag (``base``, ``adapter-a``, ``adapter-b``) and
prompt (0..3) it reports the maximum absolute logit difference against the fp32 reference
produced by transformers/PEFT, for

* ``fp64``      an exact float64 forward pass (sanity check; should agree to ~1e-4),
* ``bf16``      the bf16 backend emulation described below,
* ``bf16-lf32`` the same emulation but with the LoRA A/B matrices kept in fp32 (only change),

separately over the prefill logits ``[len, vocab]`` and over all 24 teacher-forced decode
steps ``[24, vocab]`` (row 0 = last prefill row, row j>=1 = logits after feeding the
reference greedy id ``greedy[j-1]``).  Because every operation below is row-wise or causal,
one forward pass over ``prompt + greedy[:23]`` yields both sets of rows.

Model: standard HF Llama / Qwen2 decoder - RMSNorm (eps from config), rotate-half RoPE
(theta from ``rope_parameters.rope_theta`` or ``rope_theta``), GQA, SwiGLU MLP, causal
attention scaled by 1/sqrt(head_dim), final norm, LM head (tied where the config says);
Qwen2 adds q/k/v biases.  LoRA (PEFT): y = W x + (alpha / r) * B (A x)
(alpha / sqrt(r) if ``use_rslora``).

RoPE inverse frequencies ``1 / theta**(2i/d)`` are computed in fp32 as transformers does.
The llama-gqa *base* reference was produced with the inverse frequencies rounded to bf16
(the model's buffers were cast to its bf16 dtype); its adapter references used unrounded
fp32 values; qwen2 (fp32 model) never rounds.  Both the fp64 and the bf16 paths use the same
frequencies as the reference they are compared against.

bf16 emulation (compute in fp32; r() = round fp32 to bf16, round-to-nearest-even):
  * base weight matrices r() (q,k,v,o,gate,up,down, embedding, LM head); norm weights and
    biases stay fp32; LoRA A and B r() (unless --lora-fp32 variant).
  * residual stream x fp32; embedding row = fp32 of the bf16 embedding.
  * xn = r(rmsnorm(x) * w)                      (rms in fp32)
  * qkv = xn @ Wqkv^T (fp32 accumulate); adapted: qkv += B @ fp32(scale * (A @ xn));
    + bias; RoPE in fp32 (angle = fp32(pos * inv_freq)); q, k, v = r(.) (bf16 KV cache).
  * scores fp32 from bf16 q, k; softmax fp32; attn = r(P @ V).
  * x += attn @ Wo^T; adapted: x += B @ fp32(scale * (A @ attn)).
  * xn = r(rmsnorm(x) * w2); gate, up = r(xn @ W^T) (bf16 GEMM output);
    adapted: each = r(fp32(.) + B @ fp32(scale * (A @ xn))).
  * act = r(silu(gate) * up) in fp32 from the bf16 gate/up.
  * x += act @ Wdown^T; adapted: x += B @ fp32(scale * (A @ act)).
  * logits = r(rmsnorm(x) * wf) @ Wlm^T (fp32).

Besides the maxima it reports, per case, the worst per-row mean |diff| (``rowmean``): bf16
rounding spikes in a few elements, a wrong or missing adapter moves every row.

Usage: python3 scripts/bf16_emulation.py [--fixtures DIR] [--json OUT.json]
(CudaBackendReferenceTest and CudaLoraReferenceTest state their tolerances from its output.)
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "fixtures", "reference")
VARIANTS = ("llama-gqa", "qwen2-bias")
TAGS = ("base", "adapter-a", "adapter-b")
PROJS = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn",
         "o_proj": "self_attn", "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}


# --------------------------------------------------------------------------- I/O helpers

def load_safetensors(path):
    """Parse a .safetensors file by hand; returns {name: float32 ndarray}."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        buf = data[a:b]
        dt = info["dtype"]
        if dt == "F32":
            arr = np.frombuffer(buf, dtype="<f4").astype(np.float32)
        elif dt == "F16":
            arr = np.frombuffer(buf, dtype="<f2").astype(np.float32)
        elif dt == "BF16":  # bf16 = upper 16 bits of an fp32
            arr = (np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(f"{path}: unsupported dtype {dt} for {name}")
        out[name] = arr.reshape(info["shape"])
    return out


def bf16(x):
    """Round float32 values to bf16 (round-to-nearest-even), returned as float32."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    u = x.view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.astype(np.uint32).view(np.float32)


# --------------------------------------------------------------------------- model

class Config:
    def __init__(self, path):
        c = json.load(open(path))
        self.hidden = c["hidden_size"]
        self.n_layers = c["num_hidden_layers"]
        self.n_heads = c["num_attention_heads"]
        self.n_kv = c.get("num_key_value_heads", self.n_heads)
        self.head_dim = c.get("head_dim") or self.hidden // self.n_heads
        self.eps = c["rms_norm_eps"]
        rp = c.get("rope_parameters") or {}
        self.theta = rp.get("rope_theta", c.get("rope_theta", 10000.0))
        self.tied = c.get("tie_word_embeddings", False)

    def inv_freq(self, round_bf16):
        """transformers' default RoPE inv_freq (fp32), optionally rounded to bf16."""
        d = self.head_dim
        f = (1.0 / (np.float32(self.theta) **
                    (np.arange(0, d, 2, dtype=np.int64).astype(np.float32) / np.float32(d))))
        f = f.astype(np.float32)
        return bf16(f) if round_bf16 else f


def load_lora(adir):
    cfg = json.load(open(os.path.join(adir, "adapter_config.json")))
    r, alpha = cfg["r"], cfg["lora_alpha"]
    assert not cfg.get("use_dora"), "DoRA not supported"
    assert not cfg.get("rank_pattern") and not cfg.get("alpha_pattern")
    scale = alpha / np.sqrt(r) if cfg.get("use_rslora") else alpha / r
    t = load_safetensors(os.path.join(adir, "adapter_model.safetensors"))
    lora = {}
    for name, arr in t.items():
        # base_model.model.model.layers.N.<sub>.<proj>.lora_{A,B}.weight
        parts = name.split(".")
        li, proj, which = int(parts[4]), parts[6], parts[7]
        lora.setdefault((li, proj), {})[which] = arr
    return lora, float(scale)


class Policy:
    """Numeric policy: the dtype computations run in and what r() does."""

    def __init__(self, name, dtype, rnd, lora_rnd):
        self.name, self.dtype, self.r, self.lora_r = name, dtype, rnd, lora_rnd


IDENT = lambda a: a  # noqa: E731
FP64 = Policy("fp64", np.float64, IDENT, IDENT)
BF16 = Policy("bf16", np.float32, bf16, bf16)
BF16_LORA32 = Policy("bf16-lf32", np.float32, bf16, IDENT)


class Model:
    def __init__(self, vdir, policy):
        self.cfg = Config(os.path.join(vdir, "config.json"))
        self.p = policy
        dt, r = policy.dtype, policy.r
        w = load_safetensors(os.path.join(vdir, "model.safetensors"))
        mat = lambda a: r(a).astype(dt)          # weight matrices: bf16 in the backend  # noqa: E731
        vec = lambda a: a.astype(dt)             # norms / biases: fp32  # noqa: E731
        self.embed = mat(w["model.embed_tokens.weight"])
        self.lm_head = self.embed if self.cfg.tied else mat(w["lm_head.weight"])
        self.norm = vec(w["model.norm.weight"])
        self.layers = []
        for i in range(self.cfg.n_layers):
            g = lambda s: w[f"model.layers.{i}.{s}"]  # noqa: E731
            L = {"ln1": vec(g("input_layernorm.weight")),
                 "ln2": vec(g("post_attention_layernorm.weight"))}
            for proj, sub in PROJS.items():
                L[proj] = mat(g(f"{sub}.{proj}.weight"))
                bkey = f"model.layers.{i}.{sub}.{proj}.bias"
                L[proj + ".bias"] = vec(w[bkey]) if bkey in w else None
            self.layers.append(L)

    # -- building blocks -----------------------------------------------------------------
    def rmsnorm(self, x, wt):
        var = np.mean(x * x, axis=-1, keepdims=True)
        return self.p.r(x / np.sqrt(var + self.p.dtype(self.cfg.eps)) * wt)

    def lora_delta(self, lora, li, proj, xin):
        """B @ (scale * (A @ x)) for every row of xin, or None when not adapted."""
        if lora is None or (li, proj) not in lora[0]:
            return None
        ab, scale = lora[0][(li, proj)], lora[1]
        dt, lr = self.p.dtype, self.p.lora_r
        A, B = lr(ab["lora_A"]).astype(dt), lr(ab["lora_B"]).astype(dt)
        u = (dt(scale) * (xin @ A.T)).astype(dt)
        return u @ B.T

    def proj(self, L, lora, li, name, xin):
        """fp32-output projection (+ LoRA, + bias): used for q/k/v."""
        y = xin @ L[name].T
        d = self.lora_delta(lora, li, name, xin)
        if d is not None:
            y = y + d
        if L[name + ".bias"] is not None:
            y = y + L[name + ".bias"]
        return y

    def rope(self, t, cos, sin):
        h = t.shape[-1] // 2
        rot = np.concatenate([-t[..., h:], t[..., :h]], axis=-1)
        return t * cos + rot * sin

    # -- forward -------------------------------------------------------------------------
    def forward(self, ids, lora, inv_freq):
        """Logits [len(ids), vocab] of a causal forward pass over ids."""
        c, dt, r = self.cfg, self.p.dtype, self.p.r
        T, hd = len(ids), c.head_dim
        pos = np.arange(T, dtype=dt)[:, None]
        ang = (pos * inv_freq.astype(dt)[None, :]).astype(dt)       # fp32(pos * inv_freq)
        ang = np.concatenate([ang, ang], axis=-1)
        cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]   # [T, 1, hd]
        mask = np.triu(np.full((T, T), -np.inf, dtype=dt), k=1)
        group = c.n_heads // c.n_kv

        x = self.embed[np.asarray(ids)].astype(dt)
        for li, L in enumerate(self.layers):
            # attention
            xn = self.rmsnorm(x, L["ln1"])
            q = self.proj(L, lora, li, "q_proj", xn).reshape(T, c.n_heads, hd)
            k = self.proj(L, lora, li, "k_proj", xn).reshape(T, c.n_kv, hd)
            v = self.proj(L, lora, li, "v_proj", xn).reshape(T, c.n_kv, hd)
            q, k, v = r(self.rope(q, cos, sin)), r(self.rope(k, cos, sin)), r(v)
            kk = np.repeat(k, group, axis=1).transpose(1, 0, 2)            # [H, T, hd]
            vv = np.repeat(v, group, axis=1).transpose(1, 0, 2)
            s = (q.transpose(1, 0, 2) @ kk.transpose(0, 2, 1)) * dt(1.0 / np.sqrt(hd)) + mask
            s = s - s.max(axis=-1, keepdims=True)
            P = np.exp(s)
            P = P / P.sum(axis=-1, keepdims=True)
            attn = r((P @ vv).transpose(1, 0, 2).reshape(T, c.n_heads * hd))
            x = x + attn @ L["o_proj"].T
            d = self.lora_delta(lora, li, "o_proj", attn)
            if d is not None:
                x = x + d
            # MLP
            xn = self.rmsnorm(x, L["ln2"])
            gu = {}
            for name in ("gate_proj", "up_proj"):
                y = r(xn @ L[name].T)
                d = self.lora_delta(lora, li, name, xn)
                gu[name] = y if d is None else r(y + d)
            g, u = gu["gate_proj"], gu["up_proj"]
            act = r(g / (1 + np.exp(-g)) * u)
            x = x + act @ L["down_proj"].T
            d = self.lora_delta(lora, li, "down_proj", act)
            if d is not None:
                x = x + d
        return self.rmsnorm(x, self.norm) @ self.lm_head.T


# --------------------------------------------------------------------------- comparison

def evaluate(fixtures, policies):
    """Returns rows: dict(variant, tag, prompt, <policy>.prefill, <policy>.decode, gap)."""
    rows = []
    for variant in VARIANTS:
        vdir = os.path.join(fixtures, variant)
        ref_json = json.load(open(os.path.join(vdir, "reference.json")))
        ref = load_safetensors(os.path.join(vdir, "reference.safetensors"))
        models = {p.name: Model(vdir, p) for p in policies}
        cfg = next(iter(models.values())).cfg
        loras = {"base": None}
        for tag in TAGS[1:]:
            loras[tag] = load_lora(os.path.join(vdir, tag))
        for tag in TAGS:
            # Only the llama-gqa base reference used bf16-rounded RoPE frequencies
            # (the stored dtype is bf16 and the base model's buffer was cast to it).
            round_freq = (tag == "base" and ref_json.get("stored_dtype") == "torch.bfloat16")
            inv_freq = cfg.inv_freq(round_freq)
            for i, case in enumerate(ref_json[tag]):
                prompt, greedy = case["prompt"], case["greedy"]
                pre = ref[f"{tag}.prompt{i}.prefill_logits"].astype(np.float64)
                dec = ref[f"{tag}.prompt{i}.decode_logits"].astype(np.float64)
                ids = list(prompt) + list(greedy[:-1])
                n = len(prompt)
                row = {"variant": variant, "tag": tag, "prompt": i, "len": n,
                       "min_top2_gap": case.get("min_top2_gap")}
                for name, m in models.items():
                    lg = m.forward(ids, loras[tag], inv_freq).astype(np.float64)
                    row[name + ".prefill"] = float(np.abs(lg[:n] - pre).max())
                    row[name + ".decode"] = float(np.abs(lg[n - 1:] - dec).max())
                    row[name + ".rowmean"] = float(max(np.abs(lg[:n] - pre).mean(axis=1).max(), np.abs(lg[n - 1:] - dec).mean(axis=1).max()))
                    row[name + ".greedy_ok"] = bool(
                        (np.argmax(lg[n - 1:], axis=-1) == np.asarray(greedy)).all())
                rows.append(row)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fixtures", default=FIXTURES)
    ap.add_argument("--json", help="also write the results as JSON here")
    args = ap.parse_args()

    policies = (FP64, BF16, BF16_LORA32)
    rows = evaluate(args.fixtures, policies)

    hdr = (f"{'variant':<11}{'tag':<10}{'p':>2}{'len':>4} | "
           + " | ".join(f"{p.name + ' pre':>13}{p.name + ' dec':>13}" for p in policies)
           + " | top2gap")
    print(hdr)
    print("-" * len(hdr))
    for row in rows:
        cells = " | ".join(f"{row[p.name + '.prefill']:13.3e}{row[p.name + '.decode']:13.3e}"
                           for p in policies)
        print(f"{row['variant']:<11}{row['tag']:<10}{row['prompt']:>2}{row['len']:>4} | {cells}"
              f" | {row['min_top2_gap']:.2e} | bf16 row mean {row['bf16.rowmean']:.3f}")
    print()
    print("maxima over prompts (prefill, decode):")
    for variant in VARIANTS:
        for tag in TAGS + ("all",):
            sel = [r for r in rows if r["variant"] == variant and (tag == "all" or r["tag"] == tag)]
            cells = "  ".join(
                f"{p.name}: {max(r[p.name + '.prefill'] for r in sel):.4f} / "
                f"{max(r[p.name + '.decode'] for r in sel):.4f}" for p in policies)
            print(f"  {variant:<11}{tag:<10} {cells}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
