"""The forward pass of a plain sentence-transformers model without ``SentenceTransformer.encode``.

For a model made of ``Transformer → Pooling (mean) → Normalize`` (all-MiniLM-L6-v2 and its
kin), ``encode`` is the fast tokenizer, the transformer's forward, mean pooling over the
attention mask and an L2 normalisation. Its own bookkeeping (input formatting, feature
dicts, per-call sorting, the tokenizer wrapper) cost about as much as the model itself for
one short query (a search's embedding). This module does those four steps directly; the
loader checks it against ``encode`` on probe texts and keeps ``encode`` for any model it
does not recognise or that disagrees. Quick jobs (a query, a turn's sentences) run the
transformer on ONNX Runtime when the loader attached an agreeing session
(``onnx_forward.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from onebox.embeddings.onnx_forward import OnnxForward

logger = logging.getLogger(__name__)

MIN_AGREEMENT = 0.99999  # cosine to encode()'s vectors on every probe
MIN_PAD_TOKENS = 8
MAX_GROUP = 64


@dataclass
class DirectEncoder:
    tokenizer: Any  # tokenizers.Tokenizer: truncation at the model's window, no padding
    transformer: Any  # the torch module under the Transformer wrapper (e.g. BertModel)
    token_types: bool  # whether the transformer takes token_type_ids
    dimension: int
    pad_id: int  # what fills a shorter row (masked out, but the model still reads it)
    onnx: OnnxForward | None = None  # the quick jobs' transformer pass, when it agrees

    def encode(
        self, texts: Sequence[str], *, quick: bool = False
    ) -> np.ndarray[Any, np.dtype[np.float32]]:
        """Unit vectors, one a text, in order. Call under ``torch.inference_mode``.
        ``quick``: a small job on the quick lane, run on ONNX Runtime when attached.

        Texts are tokenized first and run in groups of similar token counts, each padded to
        its own longest: a turn's passage sentences range from 5 to 100 word pieces, and one
        batch padded to the longest cost twice the compute."""
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=True)
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for group in _groups([len(e.ids) for e in encodings]):
            out[group] = self._forward([encodings[i] for i in group], quick)
        return out

    def _forward(self, encodings: list[Any], quick: bool) -> np.ndarray[Any, np.dtype[np.float32]]:
        import torch

        width = max(len(e.ids) for e in encodings)

        def matrix(rows: list[list[int]]) -> np.ndarray[Any, np.dtype[np.int64]]:
            padded = np.zeros((len(rows), width), dtype=np.int64)
            for index, row in enumerate(rows):
                padded[index, : len(row)] = row
            return padded

        ids = matrix([e.ids for e in encodings])
        mask = matrix([e.attention_mask for e in encodings])
        types = matrix([e.type_ids for e in encodings])
        if self.pad_id:
            ids[mask == 0] = self.pad_id
        if quick and self.onnx is not None:
            return _pool(self.onnx.hidden(ids, mask, types), mask)
        inputs = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
        if self.token_types:
            inputs["token_type_ids"] = torch.from_numpy(types)
        hidden = self.transformer(**inputs).last_hidden_state.float()
        weights = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        unit = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return np.ascontiguousarray(unit.numpy(), dtype=np.float32)


def _pool(
    hidden: np.ndarray[Any, np.dtype[np.float32]], mask: np.ndarray[Any, np.dtype[np.int64]]
) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Mean over the unmasked tokens, then unit length (what the torch path computes)."""
    weights = mask[..., None].astype(np.float32)
    pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
    norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    return np.ascontiguousarray(pooled / norms, dtype=np.float32)


def _groups(lengths: list[int]) -> list[list[int]]:
    """Indices, longest first, cut where padding to the group's longest would waste more than
    a quarter of it (and at least ``MIN_PAD_TOKENS``) or the group reaches ``MAX_GROUP``."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups: list[list[int]] = []
    for index in order:
        if groups:
            group = groups[-1]
            longest = lengths[group[0]]
            slack = max(MIN_PAD_TOKENS, longest // 4)
            if len(group) < MAX_GROUP and longest - lengths[index] <= slack:
                group.append(index)
                continue
        groups.append([index])
    return groups


def build(model: Any, path: Path) -> DirectEncoder | None:
    """The direct path for ``model`` (a loaded ``SentenceTransformer`` from ``path``), or
    ``None`` when its modules are not exactly the plain mean-pooling pipeline."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return None
    modules = list(model)
    names = [type(m).__name__ for m in modules]
    if names not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        return None
    wrapper, pooling = modules[0], modules[1]
    transformer = getattr(wrapper, "auto_model", None)
    mode = getattr(pooling, "pooling_mode", None)
    if mode is None:  # older sentence-transformers: one flag per mode
        flags = [k for k, v in vars(pooling).items() if k.startswith("pooling_mode_") and v]
        mode = "mean" if flags == ["pooling_mode_mean_tokens"] else None
    limit = getattr(model, "max_seq_length", None)
    file = path / "tokenizer.json"
    if (
        transformer is None or mode != "mean" or not limit or getattr(wrapper, "do_lower_case", False)
        or any(getattr(model, "prompts", {}).values()) or not file.is_file()
        or getattr(model, "default_prompt_name", None)
    ):  # fmt: skip
        return None
    tokenizer = Tokenizer.from_file(str(file))
    tokenizer.enable_truncation(max_length=int(limit))
    tokenizer.no_padding()
    padding = getattr(getattr(wrapper, "tokenizer", None), "pad_token_id", None)
    token_types = "token_type_ids" in _forward_parameters(transformer)
    dimension = int(getattr(pooling, "embedding_dimension", 0) or transformer.config.hidden_size)
    return DirectEncoder(tokenizer, transformer, token_types, dimension, int(padding or 0))


def _forward_parameters(module: Any) -> set[str]:
    import inspect

    try:
        return set(inspect.signature(module.forward).parameters)
    except (TypeError, ValueError):
        return set()


def agreement(
    direct: DirectEncoder, reference: np.ndarray[Any, Any], texts: list[str], *, quick: bool = False
) -> float:
    """The lowest cosine between the direct vectors and ``reference`` (encode's), the texts
    batched (padding) and one by one."""
    import torch

    with torch.inference_mode():
        runs = [(direct.encode(texts, quick=quick), reference)]
        runs += [
            (direct.encode([text], quick=quick), reference[i : i + 1])
            for i, text in enumerate(texts)
        ]
    return min(float(np.min(np.sum(vectors * expected, axis=1))) for vectors, expected in runs)
