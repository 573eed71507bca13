#!/usr/bin/env python3
"""Generate small, deterministic BERT-shaped ONNX test models.

Usage: python tools/gen_test_models.py OUT_DIR   (needs onnx + numpy; no torch)

Every model is built by `bert()` around one "tiny BERT" body (vocab 100, hidden H):
    emb = word_emb[input_ids] + type_emb[token_type_ids] (+ pos_emb[position_ids])
    h   = tanh(emb @ W1 + b1)
    m   = float(attention_mask)[..., None]
    ctx = sum(h*m, axis=1) / (sum(m, axis=1) + 1e-6)   # padding never reaches real tokens
    out = tanh((h + ctx) @ W2)                          # last_hidden_state [batch, sequence, H]
Weights are N(0,1)*0.5 from np.random.default_rng(1234); output is byte-identical on rerun.

Valid models
  tiny_bert               ids, mask, types -> last_hidden_state [b, s, 32]: the baseline.
  tiny_bert_no_types      ids, mask only: token_type_ids must be optional.
  tiny_bert_position_ids  + position_ids input (library feeds 0..seq_len-1).
  tiny_bert_extra_inputs  + extra_ids int64 [b, s] and extra_bias float [1, 32], both added
                          to emb: the library must zero-fill unknown inputs (known output).
  tiny_rank2              output `pooled` [b, 32] = tanh(out[:, 0] @ Wp): rank-2 path.
  tiny_int64_first        outputs ids_copy (int64) then last_hidden_state: first *float*
                          output must be read, not output 0.
  tiny_bert_h48           H=48, for out_dim larger/smaller than hidden.
  tiny_static16           every input dim static [1, 16], output [1, 16, 32].
  tiny_fallback_marker    tiny_bert plus an unused initializer `npu_cpu_fallback_marker`;
                          ORT logs a WARNING "Removing initializer 'npu_cpu_fallback_marker'..."
                          at session creation, which is a CPU-fallback signal by the spec.
  host_bert_h768          shaped like the hosts' nomic-embed-text-v1.5: inputs input_ids,
                          token_type_ids, attention_mask (that order; ids of any vocabulary,
                          taken modulo 100), hidden 768, three token-wise layers,
                          last_hidden_state [b, s, 768] (python/tests/test_host_scenario.py).
Models of each execution class and output kind (docs/models.md, "Which models run how")
  tiny_int8_dynamic       tiny_bert through onnxruntime.quantization.quantize_dynamic: one
                          int8 scale per tensor over every position and row of a run, so
                          padding and neighbours change a row's vector -> class (c).
  tiny_mask_ignoring      ctx is the mean over *all* positions (the mask is not used there):
                          padding changes the vector, same-length neighbours do not -> (b).
  tiny_time_major         output transposed to [sequence, batch, 32].
  tiny_nonzero_output     output keeps only the positions NonZero(attention_mask) finds:
                          its shape depends on the mask values, not only on the run's shape.
  tiny_fp16_output        last_hidden_state cast to float16.
  tiny_bf16_output        last_hidden_state cast to bfloat16.
  tiny_nan_output         out + log(float(input_ids)): id 0 gives -inf (non-finite when
                          unmasked; masked padding ids never reach the vector).
Error-path models (all load and run in onnxruntime CPU)
  bad_rank1_output        output [b] (rank 1)                  -> unsupported_output_rank
  bad_rank0_output        output scalar (rank 0)               -> empty_output
  bad_wide_hidden         output [b, s, 16385] via Expand      -> invalid_hidden_dim
  bad_int32_extra         + used input extra_int32 int32 [b, s] -> refused at create (unsupported_input_type)
  bad_no_float_output     only output is int64 (ids copy)      -> no float output
  bad_empty_output        output [b, 0, 32] (empty Slice)      -> empty_output
  bad_sequence_input      input_ids + a sequence(float) input  -> input is not a tensor
  bad_float_mask          attention_mask is float              -> refused at create
  bad_string_input        + an unused string input `text`      -> refused at create
  bad_huge_extra          + float input [1, 100000, 1000] (400 MB of zeros) -> refused at create
Models that never finish a run (stopped by the run-time limit or a destroy)
  slow_loop_forever       a Loop of 10^15 float additions: even create's self-check hangs.
  slow_loop_by_types      the same Loop run sum(token_type_ids) * 10^15 times: create's
                          runs (zero types) are instant, an embed with a type 1 hangs.
(tiny_static16 opened with a seq_len other than 16 is refused at create too.)
External data (external/)
  tiny_bert_external      tiny_bert with its weights in tiny_bert_external.bin beside it.
  escaping/model.onnx     the same, its data path ../tiny_bert_external.bin: refused at create.
Tokenizer (text in)
  tiny_tokenizer.json     a BERT WordPiece tokenizer.json (lower-casing normalizer, BERT
                          pre-tokenizer, [CLS] ... [SEP]) over a 24-token vocabulary, ids
                          below the models' 100: [PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3.
"""
import json
import os
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto as TP, helper, numpy_helper

I64, F32, I32, F16, BF16, STR = TP.INT64, TP.FLOAT, TP.INT32, TP.FLOAT16, TP.BFLOAT16, TP.STRING
VOCAB, MAX_POS = 100, 512


class Graph:
    """Tiny graph builder: auto-named nodes, deterministic weights."""

    def __init__(self):
        self.nodes, self.inits, self.inputs, self.outputs = [], [], [], []
        self.rng = np.random.default_rng(1234)

    def op(self, op_type, *ins, out=None, **attrs):
        out = out or f"t{len(self.nodes)}"
        self.nodes.append(helper.make_node(op_type, list(ins), [out], name=f"{op_type}_{len(self.nodes)}", **attrs))
        return out

    def const(self, name, value, dtype=np.float32):
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def weight(self, name, *shape):
        return self.const(name, self.rng.standard_normal(shape) * 0.5)

    def inp(self, name, elem, shape):
        self.inputs.append(helper.make_tensor_value_info(name, elem, shape))
        return name

    def out(self, name, elem, shape):
        self.outputs.append(helper.make_tensor_value_info(name, elem, shape))

    def model(self, name):
        graph = helper.make_graph(self.nodes, name, self.inputs, self.outputs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                  producer_name="gen_test_models", ir_version=8)
        onnx.checker.check_model(model)
        return model


def bert(name, H=32, types=True, pos=False, extras=False, int32_extra=False, static=False,
         head="hidden", ids_first=False, marker=False, ctx_all=False, float_mask=False,
         string_input=False, huge_extra=False, host=False):
    g = Graph()
    dims = [1, 16] if static else ["batch", "sequence"]
    ids = g.inp("input_ids", I64, dims)
    if host:  # the host's input order; any real vocabulary id, folded into VOCAB rows
        type_ids = g.inp("token_type_ids", I64, dims)
        ids = g.op("Mod", ids, g.const("vocab", VOCAB, np.int64))
    mask = g.inp("attention_mask", F32 if float_mask else I64, dims)
    if string_input:  # never read by the graph; ONNX Runtime still asks for it
        g.inp("text", STR, [dims[0]])
    emb = g.op("Gather", g.weight("word_emb", VOCAB, H), ids)
    if types:
        type_ids = type_ids if host else g.inp("token_type_ids", I64, dims)
        emb = g.op("Add", emb, g.op("Gather", g.weight("type_emb", 2, H), type_ids))
    if pos:
        emb = g.op("Add", emb, g.op("Gather", g.weight("pos_emb", MAX_POS, H), g.inp("position_ids", I64, dims)))
    if extras:
        emb = g.op("Add", emb, g.op("Gather", g.weight("extra_emb", VOCAB, H), g.inp("extra_ids", I64, dims)))
        emb = g.op("Add", emb, g.inp("extra_bias", F32, [1, H]))
    ax1, ax2 = g.const("axis1", [1], np.int64), g.const("axis2", [2], np.int64)
    if int32_extra:  # [b,s] int32 -> per-batch float sum [b,1,1] added to emb
        s = g.op("ReduceSum", g.op("Cast", g.inp("extra_int32", I32, dims), to=F32), ax1, keepdims=1)
        emb = g.op("Add", emb, g.op("Unsqueeze", s, ax2))
    if huge_extra:  # [1, 100000, 1000] floats, summed to one number added to emb
        emb = g.op("Add", emb, g.op("ReduceSum", g.inp("huge_extra", F32, [1, 100_000, 1_000]), keepdims=0))
    def square(name):  # H x H; scaled by 1/sqrt(H) in the wide host model, so tanh does not saturate
        return g.const(name, g.rng.standard_normal((H, H)) / np.sqrt(H)) if host else g.weight(name, H, H)

    h = g.op("Tanh", g.op("Add", g.op("MatMul", emb, square("W1")), g.weight("b1", H)))
    for layer in range(2 if host else 0):  # more token-wise layers
        h = g.op("Tanh", g.op("Add", g.op("MatMul", h, square(f"W1_{layer}")), g.weight(f"b1_{layer}", H)))
    m = g.op("Unsqueeze", g.op("Cast", mask, to=F32), ax2)
    if ctx_all:  # the mean over every position, padding included
        every = g.op("Add", g.op("Mul", m, g.const("zero_f", 0.0)), g.const("one_f", 1.0))
        ctx = g.op("Div", g.op("ReduceSum", h, ax1, keepdims=1), g.op("ReduceSum", every, ax1, keepdims=1))
    else:
        num = g.op("ReduceSum", g.op("Mul", h, m), ax1, keepdims=1)
        den = g.op("Add", g.op("ReduceSum", m, ax1, keepdims=1), g.const("eps", 1e-6))
        ctx = g.op("Div", num, den)
    hs = "last_hidden_state" if head == "hidden" else None
    out = g.op("Tanh", g.op("MatMul", g.op("Add", h, ctx), square("W2")), out=hs)
    if ids_first:
        g.out(g.op("Identity", ids, out="ids_copy"), I64, dims)
    if marker:  # unused initializer: ORT warns "Removing initializer ..." at session creation
        g.const("npu_cpu_fallback_marker", [1.0])
    if head == "hidden":
        g.out(out, F32, dims + [H])
    elif head == "pooled":
        tok0 = g.op("Gather", out, g.const("zero", 0, np.int64), axis=1)
        g.out(g.op("Tanh", g.op("MatMul", tok0, g.weight("Wp", H, H)), out="pooled"), F32, [dims[0], H])
    elif head == "rank1":
        g.out(g.op("ReduceSum", out, g.const("axes12", [1, 2], np.int64), keepdims=0, out="scores"), F32, [dims[0]])
    elif head == "rank0":
        g.out(g.op("ReduceSum", out, keepdims=0, out="score"), F32, [])
    elif head == "wide":  # [b,s,1] expanded to [b,s,16385]: no big weights in the file
        col = g.op("ReduceSum", out, ax2, keepdims=1)
        g.out(g.op("Expand", col, g.const("wide", [1, 1, 16385], np.int64), out="last_hidden_state"),
              F32, dims + [16385])
    elif head == "doubled":  # tokens twice: [b,2s,H], a shape no rule of rows and length predicts
        g.out(g.op("Concat", out, out, axis=1, out="last_hidden_state"), F32, [dims[0], "doubled", H])
    elif head == "time_major":  # [sequence, batch, H]
        g.out(g.op("Transpose", out, perm=[1, 0, 2], out="last_hidden_state"), F32, [dims[1], dims[0], H])
    elif head == "nonzero":  # the positions whose mask is not 0: [b, valid, H]
        where = g.op("NonZero", g.op("Cast", mask, to=TP.BOOL))  # [2, valid]: (row, position)
        positions = g.op("Gather", where, g.const("one", 1, np.int64), axis=0)
        g.out(g.op("Gather", out, positions, axis=1, out="last_hidden_state"), F32, [dims[0], "valid", H])
    elif head in ("fp16", "bf16"):
        elem = F16 if head == "fp16" else BF16
        g.out(g.op("Cast", out, to=elem, out="last_hidden_state"), elem, dims + [H])
    elif head == "nan":  # log(0) = -inf where an id is 0
        logs = g.op("Unsqueeze", g.op("Log", g.op("Cast", ids, to=F32)), ax2)
        g.out(g.op("Add", out, logs, out="last_hidden_state"), F32, dims + [H])
    elif head == "empty":  # Slice tokens [0:0] -> [b,0,H]
        z = g.const("zero1", [0], np.int64)
        g.out(g.op("Slice", out, z, z, ax1, out="last_hidden_state"), F32, [dims[0], 0, H])
    return g.model(name)


def no_float_output():
    g = Graph()
    g.out(g.op("Identity", g.inp("input_ids", I64, ["batch", "sequence"]), out="ids_copy"), I64, ["batch", "sequence"])
    return g.model("bad_no_float_output")


def sequence_input():
    g = Graph()
    emb = g.op("Gather", g.weight("word_emb", VOCAB, 32), g.inp("input_ids", I64, ["batch", "sequence"]))
    g.inputs.append(helper.make_tensor_sequence_value_info("seq_input", F32, [1, 32]))
    first = g.op("SequenceAt", "seq_input", g.const("zero", 0, np.int64))
    g.out(g.op("Add", emb, first, out="last_hidden_state"), F32, ["batch", "sequence", 32])
    return g.model("bad_sequence_input")


def slow_loop(name, by_types):
    """A Loop that adds 1 to a float 10^15 times: runs until it is stopped.
    by_types: the trip count is 10^15 * sum(token_type_ids), so runs with zero
    types (create's self-check) are instant and a row with a type 1 hangs."""
    g = Graph()
    ids = g.inp("input_ids", I64, ["batch", "sequence"])
    forever = g.const("forever", 10**15, np.int64)
    if by_types:
        types = g.inp("token_type_ids", I64, ["batch", "sequence"])
        forever = g.op("Mul", g.op("ReduceSum", types, keepdims=0), forever)
    body = helper.make_graph(
        [helper.make_node("Add", ["v", "one"], ["v_next"]), helper.make_node("Identity", ["cond"], ["cond_next"])],
        "add_one",
        [helper.make_tensor_value_info("i", I64, []), helper.make_tensor_value_info("cond", TP.BOOL, []),
         helper.make_tensor_value_info("v", F32, [])],
        [helper.make_tensor_value_info("cond_next", TP.BOOL, []), helper.make_tensor_value_info("v_next", F32, [])],
        [numpy_helper.from_array(np.asarray(1.0, dtype=np.float32), "one")])
    start = g.op("Cast", g.op("ReduceSum", ids, keepdims=0), to=F32)
    looped = g.op("Loop", forever, g.const("keep_going", True, np.bool_), start, body=body)
    per_token = g.op("Unsqueeze", g.op("Cast", ids, to=F32), g.const("last_axis", [-1], np.int64))
    g.out(g.op("Add", per_token, looped, out="last_hidden_state"), F32, ["batch", "sequence", 1])
    return g.model(name)


def int8_dynamic():
    """tiny_bert quantised by ONNX Runtime's own tool (MatMul weights int8, dynamic
    activation scales), as `model_quantized.onnx` files are made."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # its advice to pre-process first
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = os.path.join(tmp, "fp32.onnx"), os.path.join(tmp, "int8.onnx")
        onnx.save(bert("tiny_int8_dynamic"), fp32)
        quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8)
        return onnx.load(int8)


MODELS = {  # name -> bert() options, or a standalone builder
    "tiny_bert": {},
    "tiny_bert_no_types": dict(types=False),
    "tiny_bert_position_ids": dict(pos=True),
    "tiny_bert_extra_inputs": dict(extras=True),
    "tiny_rank2": dict(head="pooled"),
    "tiny_int64_first": dict(ids_first=True),
    "tiny_bert_h48": dict(H=48),
    "tiny_static16": dict(static=True),
    "tiny_fallback_marker": dict(marker=True),
    "host_bert_h768": dict(H=768, host=True),
    "tiny_doubled_tokens": dict(head="doubled"),
    "tiny_int8_dynamic": int8_dynamic,
    "tiny_mask_ignoring": dict(ctx_all=True),
    "tiny_time_major": dict(head="time_major"),
    "tiny_nonzero_output": dict(head="nonzero"),
    "tiny_fp16_output": dict(head="fp16"),
    "tiny_bf16_output": dict(head="bf16"),
    "tiny_nan_output": dict(head="nan"),
    "bad_rank1_output": dict(head="rank1"),
    "bad_rank0_output": dict(head="rank0"),
    "bad_wide_hidden": dict(head="wide"),
    "bad_int32_extra": dict(int32_extra=True),
    "bad_no_float_output": no_float_output,
    "bad_empty_output": dict(head="empty"),
    "bad_sequence_input": sequence_input,
    "bad_float_mask": dict(float_mask=True),
    "bad_string_input": dict(string_input=True),
    "bad_huge_extra": dict(huge_extra=True),
    "slow_loop_forever": lambda: slow_loop("slow_loop_forever", by_types=False),
    "slow_loop_by_types": lambda: slow_loop("slow_loop_by_types", by_types=True),
}


TOKENIZER_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "world", "##s", "the", "a", "cat", "dog",
                   "sat", "on", "mat", "is", "it", "##ting", ".", ",", "!", "?", "cafe", "over", "there"]


def tiny_tokenizer():
    """The tokenizer.json of the docstring (what all-MiniLM-L6-v2's holds, smaller)."""
    special = {name: {"id": name, "ids": [TOKENIZER_VOCAB.index(name)], "tokens": [name]} for name in ("[CLS]", "[SEP]")}
    piece = lambda kind, name, type_id: {kind: {"id": name, "type_id": type_id}}  # noqa: E731
    return {
        "version": "1.0",
        "truncation": {"direction": "Right", "max_length": 512, "strategy": "LongestFirst", "stride": 0},
        "padding": None,
        "added_tokens": [
            {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
             "special": True}
            for i, t in enumerate(TOKENIZER_VOCAB[:4])
        ],
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                       "strip_accents": None, "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [piece("SpecialToken", "[CLS]", 0), piece("Sequence", "A", 0), piece("SpecialToken", "[SEP]", 0)],
            "pair": [piece("SpecialToken", "[CLS]", 0), piece("Sequence", "A", 0), piece("SpecialToken", "[SEP]", 0),
                     piece("Sequence", "B", 1), piece("SpecialToken", "[SEP]", 1)],
            "special_tokens": special,
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": {t: i for i, t in enumerate(TOKENIZER_VOCAB)}},
    }


def external_data(out_dir):
    """external/tiny_bert_external.onnx: tiny_bert with its weights in
    external/tiny_bert_external.bin; external/escaping/model.onnx: the same whose
    data path leads out of its directory (../tiny_bert_external.bin), refused."""
    ext_dir = os.path.join(out_dir, "external")
    os.makedirs(os.path.join(ext_dir, "escaping"), exist_ok=True)
    model = bert("tiny_bert")
    with tempfile.TemporaryDirectory() as tmp:
        onnx.save_model(model, os.path.join(tmp, "m.onnx"), save_as_external_data=True,
                        all_tensors_to_one_file=True, location="tiny_bert_external.bin", size_threshold=1024)
        with open(os.path.join(tmp, "tiny_bert_external.bin"), "rb") as f:
            write(os.path.join(ext_dir, "tiny_bert_external.bin"), f.read())
        saved = onnx.load(os.path.join(tmp, "m.onnx"), load_external_data=False)
    write(os.path.join(ext_dir, "tiny_bert_external.onnx"), saved.SerializeToString())
    for tensor in saved.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../tiny_bert_external.bin"
    write(os.path.join(ext_dir, "escaping", "model.onnx"), saved.SerializeToString())


def write(path, data: bytes):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    print(path)


def main(argv):
    if len(argv) != 2:
        sys.exit(f"usage: {argv[0]} OUT_DIR")
    os.makedirs(argv[1], exist_ok=True)
    for name, spec in MODELS.items():
        model = spec() if callable(spec) else bert(name, **spec)
        write(os.path.join(argv[1], name + ".onnx"), model.SerializeToString())
    external_data(argv[1])
    tokenizer = json.dumps(tiny_tokenizer(), indent=1, sort_keys=True).encode()
    write(os.path.join(argv[1], "tiny_tokenizer.json"), tokenizer)


if __name__ == "__main__":
    main(sys.argv)
