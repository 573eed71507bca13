"""An independent reference for the library's numbers: Python onnxruntime runs the
model, numpy does the contract's pooling and fold (abi.md, "embed").

It shares no code with the library: only the contract.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort


class ReferenceEmbedder:
    def __init__(self, model_path, seq_len: int, out_dim: int, threads: int = 1):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self.seq_len = max(seq_len, 8)
        self.out_dim = max(out_dim, 1)
        self.output = next(o.name for o in self.session.get_outputs() if o.type == "tensor(float)")

    def _feeds(self, ids, mask, types):
        feeds = {}
        for spec in self.session.get_inputs():
            shape = [
                d if isinstance(d, int) and 0 < d < 1_000_000 else (self.seq_len if i == 1 else 1)
                for i, d in enumerate(spec.shape)
            ]
            given = {
                "input_ids": ids,
                "attention_mask": np.ones(self.seq_len, np.int64) if mask is None else mask,
                "token_type_ids": np.zeros(self.seq_len, np.int64) if types is None else types,
                "position_ids": np.arange(self.seq_len, dtype=np.int64),
            }.get(spec.name)
            dtype = np.float32 if spec.type == "tensor(float)" else np.int64
            values = np.zeros(shape, dtype) if given is None else np.asarray(given, dtype)
            feeds[spec.name] = values.reshape(shape)
        return feeds

    def embed(self, ids, mask=None, types=None) -> np.ndarray:
        (output,) = self.session.run([self.output], self._feeds(ids, mask, types))
        hidden = output.shape[-1]
        if output.ndim == 2:
            pooled = output[0].astype(np.float32)
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
