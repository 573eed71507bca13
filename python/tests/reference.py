"""An independent reference for the library's numbers: Python onnxruntime runs the
model, numpy does the contract's pooling and fold (abi.md, "embed").

It shares no code with the library: only the contract, and the library's promise
that a row's vector is that of the row alone, either padded to seq_len (the
contract's run; `trimmed=False`) or cut to its own length (`trimmed=True`: up to
its last non-zero mask value, all seq_len for a NULL or all-zero mask).

The read output is the first floating-point output (float, float16 or bfloat16),
widened to float32; numpy has no bfloat16, so for a bfloat16 output the model is
given one more node that casts it to float (exact) and that is run instead.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

FLOAT_TYPES = ("tensor(float)", "tensor(float16)", "tensor(bfloat16)")


def _widened_bf16_model(model_path, name: str) -> bytes:
    """The model with its bfloat16 output `name` cast to float."""
    model = onnx.load(str(model_path))
    graph = model.graph
    widened = name + "_as_float"
    graph.node.append(helper.make_node("Cast", [name], [widened], to=TensorProto.FLOAT))
    for i, output in enumerate(graph.output):
        if output.name == name:
            graph.output.insert(i + 1, helper.make_tensor_value_info(widened, TensorProto.FLOAT, None))
    return model.SerializeToString()


class ReferenceEmbedder:
    def __init__(self, model_path, seq_len: int, out_dim: int, threads: int = 1, time_major: bool = False):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        output = next(o for o in session.get_outputs() if o.type in FLOAT_TYPES)
        self.output = output.name
        if output.type == "tensor(bfloat16)":
            self.output = output.name + "_as_float"
            model = _widened_bf16_model(model_path, output.name)
            session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.session = session
        self.seq_len = max(seq_len, 8)
        self.out_dim = max(out_dim, 1)
        self.time_major = time_major  # the output is [tokens, batch, hidden]

    def _feeds(self, ids, mask, types, length):
        feeds = {}
        for spec in self.session.get_inputs():
            shape = [
                d if isinstance(d, int) and 0 < d < 1_000_000 else (length if i == 1 else 1)
                for i, d in enumerate(spec.shape)
            ]
            given = {
                "input_ids": ids,
                "attention_mask": np.ones(length, np.int64) if mask is None else mask,
                "token_type_ids": np.zeros(length, np.int64) if types is None else types,
                "position_ids": np.arange(length, dtype=np.int64),
            }.get(spec.name)
            dtype = np.float32 if spec.type == "tensor(float)" else np.int64
            values = np.zeros(shape, dtype) if given is None else np.asarray(given, dtype)[:length]
            feeds[spec.name] = values.reshape(shape)
        return feeds

    def own_length(self, mask) -> int:
        """Positions up to the last non-zero mask value (seq_len for none)."""
        valid = np.flatnonzero(np.asarray(mask)) if mask is not None else []
        return int(valid[-1]) + 1 if len(valid) else self.seq_len

    def embed(self, ids, mask=None, types=None, trimmed: bool = False) -> np.ndarray:
        length = self.own_length(mask) if trimmed else self.seq_len
        (output,) = self.session.run([self.output], self._feeds(ids, mask, types, length))
        output = output.astype(np.float32)
        if self.time_major:
            output = output.swapaxes(0, 1)
        hidden = output.shape[-1]
        if output.ndim == 2:
            pooled = output[0]
        else:
            rows = output.reshape(-1, output.shape[-2], hidden)[0]
            tokens = min(self.seq_len, rows.shape[0])
            valid_mask = np.ones(self.seq_len, np.int64) if mask is None else np.asarray(mask)
            pooled = np.zeros(hidden, np.float32)
            valid = 0
            for t in range(tokens):  # f32 sums in token order, as the contract says
                if valid_mask[t] > 0:
                    pooled += rows[t]
                    valid += 1
            pooled = rows[0].copy() if valid == 0 else pooled * (np.float32(1.0) / np.float32(valid))
        out = np.zeros(self.out_dim, np.float32)
        n = min(hidden, self.out_dim)
        out[:n] = pooled[:n]
        norm_sq = float(np.sum(out.astype(np.float64) ** 2))
        if norm_sq > 1e-12:
            out *= np.float32(1.0 / np.sqrt(norm_sq))
        return out
