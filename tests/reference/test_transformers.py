"""Every model family's Hugging Face directory against `transformers` on the CPU, the
reference implementation of each architecture (issue 16).

Per family: a tiny config built with the transformers config class (LlamaConfig,
MistralConfig, Qwen2Config, Qwen3Config, GemmaConfig, Gemma2Config, Gemma3TextConfig,
Phi3Config) at the shapes of tiny_models.FAMILIES, random weights (torch.manual_seed, then
rescaled as tiny_models does so that activations stay O(1) and the logits have clear
winners), eager attention, float32. The model is written twice: `save_pretrained` (config.json
as transformers writes it, model.safetensors) and the same config.json with
`torch.save(state_dict)` as pytorch_model.bin (transformers 5 no longer writes .bin itself).
Every directory gets a small byte-level BPE tokenizer.json (up to 512 tokens, trained here with
`tokenizers`), because inferd wants a tokenizer next to the weights; token ids are given
directly, so it only has to load.

A third directory, v4-config, holds the same safetensors with the config.json that
transformers 4 wrote (top-level rope_theta / rope_scaling / rope_local_base_freq instead of
transformers 5's rope_parameters; transformers itself is checked to read it as the same
model), the form of most checkpoints published so far. Besides the families, "llama3" is
Llama with Llama 3.1's RoPE scaling.

Compared on each directory, with inferd's CLI (`logits`, `generate --temperature 0`, both
with an F32 K/V cache):
- teacher-forced logits over PROMPT_LEN positions: top-1 agreement >= 99% and max |delta
  logit| within TOLERANCE of the largest logit (both run fp32; they differ by the order of
  float additions only), the figures recorded with reference_report;
- a greedy continuation of GREEDY tokens (transformers `generate(do_sample=False)`, EOS
  off): identical token for token.

Sliding windows are WINDOW = 8 positions against 40-token sequences (mistral, gemma2's
local layers, gemma3's five local layers, phi3), gemma2 soft-caps attention scores at 5 and
logits at 3: the test checks on transformers itself that switching each of these off moves
the logits by far more than TOLERANCE, so ignoring one in inferd cannot pass.

KNOWN_MISMATCHES lists what fails today (strict xfail, so a fix shows up as XPASS and fails
until the entry goes); empty since inferd reads transformers 5's rope_parameters.

Phi-3 LongRoPE (phi3_longrope, phi3_longrope_short: the 128k models' RoPE): original context
32 under max_position_embeddings 2048 (attention factor sqrt(1 + ln 64 / ln 32)). transformers
picks the long factors for a sequence longer than the original context, the short ones
otherwise; inferd picks per engine, by its maximum model length. So phi3_longrope runs 40
positions and a greedy continuation of a 34-token prompt (every sequence past 32: long factors
in transformers) with --max-model-len 64, and phi3_longrope_short runs 32 positions and a
12 + 16-token greedy sequence with --max-model-len 32 (short factors). Each checks on
transformers that the other factor set and the attention factor move its logits.

Baichuan: transformers has no built-in Baichuan (Baichuan-7B ships modeling code run with
trust_remote_code). Baichuan-7B is Llama with q, k and v fused row-wise in W_pack, so the
reference is transformers' LlamaForCausalLM, and the inferd directory holds the same weights
under Baichuan-7B's names (W_pack = [q; k; v]) with Baichuan-7B's config.json
(BaiChuanForCausalLM, hand-written: there is no transformers config class for it).
"""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from conftest import missing
from tiny_models import FAMILIES as SHAPES
from tiny_models import longrope_factors

try:
    import torch
    import transformers
except ImportError:  # skipped (failed under INFERD_REFERENCE_STRICT=1) in the fixture below
    torch = transformers = None

VOCAB = 512
PROMPT_LEN = 40
GREEDY_PROMPT = 12
GREEDY = 16
WINDOW = 8
TOLERANCE = 1e-3  # max |delta logit| / max(1, max |logit|)
# F32 K/V cache: fp32 arithmetic throughout. A small cache: the default (1 GiB) costs more
# page-zeroing than these models' whole forward pass.
INFERD_OPTS = ["--kv-cache-dtype", "float32", "--kv-cache-memory", "16MiB"]

# Phi-3 LongRoPE at tiny_models' phi3 shapes (head_dim 32: 16 factors each).
LONGROPE_ORIGINAL = 32
_LONG, _SHORT = longrope_factors(SHAPES["phi3"]["head_dim"])
LONGROPE = dict(original_max_position_embeddings=LONGROPE_ORIGINAL,
                rope_scaling=dict(rope_type="longrope", long_factor=_LONG, short_factor=_SHORT))


def _longrope(**changes):
    return dict(rope_scaling=dict(LONGROPE["rope_scaling"], **changes))


# family -> (transformers config class, model class, shapes from tiny_models, config kwargs).
# RoPE bases are those of released models (Llama 3: 500k, Mistral v0.2+ and Qwen: 1M).
SPECS = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", "llama", dict(rope_theta=500000.0)),
    # Llama 3.1's RoPE scaling, with an original context short enough to matter at 40 positions.
    "llama3": ("LlamaConfig", "LlamaForCausalLM", "llama",
               dict(rope_theta=500000.0, rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                                           high_freq_factor=4.0, original_max_position_embeddings=16))),
    "mistral": ("MistralConfig", "MistralForCausalLM", "llama", dict(rope_theta=1e6, sliding_window=WINDOW)),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", "qwen2", dict(rope_theta=1e6)),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", "qwen3", dict(rope_theta=1e6)),
    "gemma": ("GemmaConfig", "GemmaForCausalLM", "gemma", dict(rope_theta=10000.0)),
    # query_pre_attn_scalar: the classes' default (256), not head_dim, so that it is read.
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM", "gemma2",
               dict(rope_theta=10000.0, sliding_window=WINDOW, attn_logit_softcapping=5.0,
                    final_logit_softcapping=3.0)),
    # 6 layers: five local (RoPE base 10k) and one global (1M), the class's defaults.
    "gemma3": ("Gemma3TextConfig", "Gemma3ForCausalLM", "gemma3", dict(sliding_window=WINDOW)),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", "phi3", dict(rope_theta=10000.0, sliding_window=WINDOW)),
    # Reference: Llama (see the module docstring); 4 layers (tiny_models' 32 are for llama.cpp).
    "baichuan": ("LlamaConfig", "LlamaForCausalLM", "baichuan", dict(rope_theta=10000.0, num_hidden_layers=4)),
    # Phi-3 128k's LongRoPE (see the module docstring), long and short factor sets.
    "phi3_longrope": ("Phi3Config", "Phi3ForCausalLM", "phi3", dict(rope_theta=10000.0, **LONGROPE)),
    "phi3_longrope_short": ("Phi3Config", "Phi3ForCausalLM", "phi3", dict(rope_theta=10000.0, **LONGROPE)),
}

# Per family, where it differs: teacher-forced positions, greedy prompt length, inferd flags.
RUNS = {
    "phi3_longrope": dict(greedy_prompt=34, inferd=["--max-model-len", "64"]),
    "phi3_longrope_short": dict(positions=32, inferd=["--max-model-len", "32"]),
}

# What each family's test checks it is sensitive to: config changes that switch a feature
# off must move transformers' own logits by far more than TOLERANCE.
FEATURES_OFF = {
    "llama3": {"no_rope_scaling": dict(rope_scaling=None)},
    "mistral": {"no_window": dict(sliding_window=4096)},
    "gemma2": {"no_window": dict(sliding_window=4096), "no_attn_softcap": dict(attn_logit_softcapping=None),
               "no_final_softcap": dict(final_logit_softcapping=None)},
    "gemma3": {"no_window": dict(sliding_window=4096)},
    "phi3": {"no_window": dict(sliding_window=4096)},
    "phi3_longrope": {"no_longrope": dict(rope_scaling=None), "short_factors": _longrope(long_factor=_SHORT),
                      "no_attention_factor": _longrope(attention_factor=1.0)},
    "phi3_longrope_short": {"no_longrope": dict(rope_scaling=None), "long_factors": _longrope(short_factor=_LONG),
                            "no_attention_factor": _longrope(attention_factor=1.0)},
}

# Families whose comparison fails today: {family: reason} (xfail, strict: fixed -> XPASS fails).
# All of today's come from one config.json reading gap: transformers >= 5 writes the RoPE base
# (and scaling) inside "rope_parameters" ({"rope_type": ..., "rope_theta": ..., scaling keys};
# Gemma 3: one such object per "full_attention" / "sliding_attention"), with no top-level
# rope_theta / rope_scaling / rope_local_base_freq. src/model/hf_config.cc reads only the
# top-level keys, so inferd silently runs RoPE base 10000 (ModelConfig's default) without
# scaling. The v4-config cases (the same weights, the config in transformers 4's form) pass.
KNOWN_MISMATCHES: dict[str, str] = {}

BAICHUAN_CONFIG = {  # Baichuan-7B's config.json at the test's shapes
    "architectures": ["BaiChuanForCausalLM"],
    "auto_map": {"AutoConfig": "configuration_baichuan.BaiChuanConfig",
                 "AutoModelForCausalLM": "modeling_baichuan.BaiChuanForCausalLM"},
    "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "hidden_act": "silu", "initializer_range": 0.02,
    "max_position_embeddings": 4096, "model_type": "baichuan", "rms_norm_eps": 1e-06,
    "tie_word_embeddings": False, "torch_dtype": "float32", "transformers_version": "4.29.1", "use_cache": True,
}


def _config(family, **overrides):
    cls_name, _, shape_name, extra = SPECS[family]
    s = SHAPES[shape_name]
    kw = dict(vocab_size=VOCAB, hidden_size=s["hidden"], intermediate_size=s["ffn"], num_hidden_layers=s["layers"],
              num_attention_heads=s["heads"], num_key_value_heads=s["kv_heads"], head_dim=s["head_dim"],
              max_position_embeddings=2048, rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2, pad_token_id=0,
              tie_word_embeddings=family.startswith("gemma"), attention_bias=bool(s.get("bias")))
    base = "phi3" if family.startswith("phi3") else family  # phi3_longrope*: Phi-3's config keys
    if base in ("qwen2", "phi3", "baichuan"):
        kw.pop("head_dim")  # hidden / heads in these classes and in Baichuan-7B
        assert s["hidden"] // s["heads"] == s["head_dim"], family
    if base in ("qwen2", "phi3", "mistral", "gemma2", "gemma3"):
        kw.pop("attention_bias")  # Qwen2 always has q/k/v bias; the others take no such key
    kw.update(extra)
    kw.update(overrides)
    cfg = getattr(transformers, cls_name)(**kw)
    cfg._attn_implementation = "eager"
    return cfg


def _init_weights(model, family, seed):
    """tiny_models' scheme: matrices N(0, gain^2 / fan_in) with gain 2 on q and k, the LM head
    gain 4, embeddings 0.5 (Gemma: 1 / sqrt(hidden), as it scales them by sqrt(hidden) on the
    way in), norms 1 + N(0, 0.01) (Gemma's HF norm weights w act as 1 + w: w ~ N(0, 0.01)),
    biases N(0, 0.01)."""
    gen = torch.Generator().manual_seed(seed)
    gemma = family.startswith("gemma")
    cfg = model.config
    hidden = cfg.hidden_size
    q_rows = cfg.num_attention_heads * (getattr(cfg, "head_dim", None) or hidden // cfg.num_attention_heads)
    kv_rows = q_rows // cfg.num_attention_heads * cfg.num_key_value_heads

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float32)

    with torch.no_grad():
        for name, p in model.named_parameters():  # a tied lm_head is listed once, as the embedding
            if name.endswith("norm.weight"):
                p.copy_((0.0 if gemma else 1.0) + 0.1 * randn(*p.shape))
            elif name.endswith(".bias"):
                p.copy_(0.1 * randn(*p.shape))
            elif name == "model.embed_tokens.weight":
                p.copy_(randn(*p.shape) * (1.0 / math.sqrt(hidden) if gemma else 0.5))
            else:
                assert p.dim() == 2, name
                gain = 4.0 if name == "lm_head.weight" else 1.0
                w = randn(*p.shape) * gain / math.sqrt(p.shape[1])
                if name.endswith(("q_proj.weight", "k_proj.weight")):
                    w *= 2.0
                elif name.endswith("qkv_proj.weight"):
                    w[: q_rows + kv_rows] *= 2.0
                p.copy_(w)


def _write_tokenizer(path):
    """A byte-level BPE tokenizer.json of up to VOCAB tokens (id 0 <|endoftext|>), trained on
    this module's docstrings."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: PLC0415

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>"], show_progress=False)
    text = (__doc__ + _init_weights.__doc__).split("\n") * 4
    tok.train_from_iterator(text, trainer)
    assert tok.get_vocab_size() <= VOCAB, tok.get_vocab_size()  # inferd: at most the model's vocabulary
    tok.save(str(path))


def _ids(n, seed):
    rng = np.random.default_rng(seed)
    return [int(x) for x in rng.integers(1, VOCAB, size=n)]


def _logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].double().numpy()


def _greedy(model, ids):
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             max_new_tokens=GREEDY, do_sample=False, eos_token_id=None, pad_token_id=0)
    toks = [int(t) for t in out[0, len(ids):]]
    assert len(toks) == GREEDY, toks
    return toks


def _variant(model, family, **changes):
    """The same weights under a changed config (a feature switched off)."""
    m = getattr(transformers, SPECS[family][1])(_config(family, **changes)).eval()
    m.load_state_dict(model.state_dict())
    return m


def _baichuan_state_dict(sd):
    """Llama's q/k/v -> Baichuan-7B's W_pack = [q; k; v] (rows)."""
    out = {}
    for name, t in sd.items():
        if name.endswith("self_attn.q_proj.weight"):
            p = name[: -len("q_proj.weight")]
            out[p + "W_pack.weight"] = torch.cat([sd[p + "q_proj.weight"], sd[p + "k_proj.weight"],
                                                  sd[p + "v_proj.weight"]]).contiguous()
        elif not name.endswith(("self_attn.k_proj.weight", "self_attn.v_proj.weight")):
            out[name] = t.contiguous()
    return out


def _transformers4_config(c: dict) -> dict:
    """config.json as transformers 4 wrote it (most checkpoints published so far): RoPE base
    and scaling as top-level rope_theta / rope_scaling (Gemma 3: rope_theta of the global
    layers, rope_local_base_freq of the local ones) instead of transformers 5's
    rope_parameters; torch_dtype for dtype."""
    c = dict(c)
    rp = c.pop("rope_parameters", None)
    if rp is not None:
        if "full_attention" in rp:
            c["rope_local_base_freq"] = rp["sliding_attention"]["rope_theta"]
            rp = rp["full_attention"]
        rp = dict(rp)
        c["rope_theta"] = rp.pop("rope_theta")
        if "partial_rotary_factor" in rp:
            c["partial_rotary_factor"] = rp.pop("partial_rotary_factor")
        c["rope_scaling"] = None if rp.get("rope_type", "default") == "default" else rp
    if "dtype" in c:
        c["torch_dtype"] = c.pop("dtype")
    return c


def _write_dirs(model, family, root, tokenizer_json):
    """root/safetensors (save_pretrained), root/bin (the same config.json, torch.save) and,
    except for Baichuan (whose config.json is already in the old form), root/v4-config (the
    safetensors with _transformers4_config's config.json)."""
    st_dir, bin_dir = root / "safetensors", root / "bin"
    bin_dir.mkdir(parents=True)
    if family == "baichuan":
        from safetensors.torch import save_file  # noqa: PLC0415

        st_dir.mkdir(parents=True)
        cfg = model.config
        config = dict(BAICHUAN_CONFIG, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
                      num_attention_heads=cfg.num_attention_heads, num_hidden_layers=cfg.num_hidden_layers,
                      vocab_size=cfg.vocab_size)
        sd = _baichuan_state_dict(model.state_dict())
        (st_dir / "config.json").write_text(json.dumps(config, indent=2))
        save_file(sd, str(st_dir / "model.safetensors"), metadata={"format": "pt"})
    else:
        model.save_pretrained(st_dir)
        sd = model.state_dict()  # a tied lm_head.weight shares the embedding's storage, as in HF's .bin files
    assert (st_dir / "model.safetensors").is_file()
    (bin_dir / "config.json").write_text((st_dir / "config.json").read_text())
    torch.save(sd, bin_dir / "pytorch_model.bin")
    dirs = {"safetensors": st_dir, "bin": bin_dir}
    if family != "baichuan":
        v4_dir = dirs["v4-config"] = root / "v4-config"
        v4_dir.mkdir()
        shutil.copyfile(st_dir / "model.safetensors", v4_dir / "model.safetensors")
        config = _transformers4_config(json.loads((st_dir / "config.json").read_text()))
        (v4_dir / "config.json").write_text(json.dumps(config, indent=2))
    for d in dirs.values():
        (d / "tokenizer.json").write_text(tokenizer_json.read_text())
    return dirs


@pytest.fixture(scope="module")
def hf_reference(tmp_path_factory, inferd_bin):
    """hf_reference(family) -> dict: the directories (_write_dirs), the ids, transformers'
    logits, its greedy continuation and the sensitivity figures; built once per family."""
    if torch is None:
        missing("torch / transformers not importable (run scripts/install-deps.sh)")
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("transformers")
    tokenizer_json = root / "tokenizer.json"
    _write_tokenizer(tokenizer_json)
    made = {}

    def get(family):
        if family not in made:
            torch.manual_seed(1000 + list(SPECS).index(family))
            model = getattr(transformers, SPECS[family][1])(_config(family)).eval()
            assert model.config._attn_implementation == "eager"
            _init_weights(model, family, seed=list(SPECS).index(family) + 1)
            model.generation_config.eos_token_id = None
            run = RUNS.get(family, {})
            ids = _ids(run.get("positions", PROMPT_LEN), 7)
            ref = _logits(model, ids)
            sensitivity = {name: float(np.abs(_logits(_variant(model, family, **changes), ids) - ref).max())
                           for name, changes in FEATURES_OFF.get(family, {}).items()}
            dirs = _write_dirs(model, family, root / family, tokenizer_json)
            if "v4-config" in dirs:  # transformers reads the old form as the same model
                again = transformers.AutoModelForCausalLM.from_pretrained(
                    dirs["v4-config"], attn_implementation="eager", dtype=torch.float32).eval()
                assert np.array_equal(_logits(again, ids), ref), family
            prompt = ids[:run.get("greedy_prompt", GREEDY_PROMPT)]
            made[family] = dict(dirs=dirs, ids=ids, ref=ref, greedy_prompt=prompt, greedy=_greedy(model, prompt),
                                sensitivity=sensitivity, inferd=run.get("inferd", []))
        return made[family]

    return get


def _params():
    out = []
    for family in SPECS:
        for fmt in ("safetensors", "bin") + (() if family == "baichuan" else ("v4-config",)):
            marks = [pytest.mark.xfail(strict=True, reason=KNOWN_MISMATCHES[family])] \
                if family in KNOWN_MISMATCHES and fmt != "v4-config" else []
            out.append(pytest.param(family, fmt, marks=marks, id=f"{family}-{fmt}"))
    return out


@pytest.mark.parametrize("family,fmt", _params())
def test_family_matches_transformers(family, fmt, hf_reference, run_inferd_json, tmp_path, reference_report):
    r = hf_reference(family)
    ref, model_dir = r["ref"], r["dirs"][fmt]
    scale = max(1.0, float(np.abs(ref).max()))
    # The reference must be informative: logits vary, and the features under test matter.
    assert ref.std() > 0.5, ref.std()
    for name, delta in r["sensitivity"].items():
        assert delta > 100 * TOLERANCE * scale, (name, delta)

    (tmp_path / "ids.json").write_text(json.dumps(r["ids"]))
    npy = tmp_path / "logits.npy"
    run_inferd_json(["logits", "--model", model_dir, "--token-ids-file", tmp_path / "ids.json", "--npy", npy,
                     "--json", *INFERD_OPTS, *r["inferd"]])
    ours = np.load(npy).astype(np.float64)
    assert ours.shape == ref.shape
    agree = float((ours.argmax(axis=1) == ref.argmax(axis=1)).mean())
    diff = np.abs(ours - ref)
    first_bad = np.flatnonzero(diff.max(axis=1) > TOLERANCE * scale)

    (tmp_path / "prompt.jsonl").write_text(json.dumps({"prompt_token_ids": r["greedy_prompt"]}) + "\n")
    out = run_inferd_json(["generate", "--model", model_dir, "--input", tmp_path / "prompt.jsonl", "--max-tokens",
                           str(GREEDY), "--temperature", "0", "--ignore-eos", "--json", *INFERD_OPTS, *r["inferd"]])
    greedy_ours = out["outputs"][0]["token_ids"]
    reference_report.record(f"transformers_{family}_{fmt}", positions=len(r["ids"]), top1_agreement=agree,
                            max_abs_logit_diff=float(diff.max()), max_abs_logit=scale, logit_std=float(ref.std()),
                            greedy_identical=greedy_ours == r["greedy"],
                            **{f"ref_delta_{k}": v for k, v in r["sensitivity"].items()})
    assert agree >= 0.99, (agree, float(diff.max()))
    assert first_bad.size == 0, (f"|delta logit| > {TOLERANCE} x {scale:.3g} from position {first_bad[:1]}",
                                 float(diff.max()))
    assert greedy_ours == r["greedy"]
