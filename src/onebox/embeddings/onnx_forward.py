"""The quick lane's transformer pass on ONNX Runtime: a search's query in a third of the time.

A query is a dozen or two word pieces, so each of the model's matrix products has a dozen
rows: torch's GEMMs spend most of their time packing the weights for every call, and its
per-operator dispatch adds the rest. ONNX Runtime packs the weights once, when the session
is made. Measured on a 2-core AVX2 EPYC, one thread, all-MiniLM-L6-v2: a 16-word-piece
query 3.7 ms against 11 ms through torch, cosine to ``encode()``'s vector 1.0000000. Large
batches stay on torch (the document lane): 64 passages of 256 word pieces took 3.0 s on
ONNX Runtime against 2.2 s, and its memory arena grew to the batch's 2 GB.

The graph is exported once from the loaded transformer, with torch.onnx's TorchScript
exporter, on a copy (the export leaves its module in training mode, dropout on) and on a
padded batch, so the traced graph always applies the attention mask. It is cached under the
user's cache folder, named by a digest of the model's files and of the torch, onnx and
onnxruntime versions: the next process loads it in a fraction of a second instead of
exporting again (about 1.5 s). The loader (``local._direct``) checks its vectors against
``encode()``'s, batched and one by one, and keeps torch when they disagree.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.metadata
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

EXPORT_FORMAT = 1  # bump when the exported graph changes for the same model and versions
OPSET = 17
_RUNTIME_PACKAGES = ("torch", "onnx", "onnxruntime")


class OnnxUnavailable(Exception):
    """ONNX Runtime cannot run this model here (a package missing, or the export failed)."""


@dataclass
class OnnxForward:
    session: Any  # onnxruntime.InferenceSession, one intra-op thread
    token_types: bool
    file: Path | None  # the cached graph; None when it could not be cached

    def hidden(
        self, ids: np.ndarray[Any, Any], mask: np.ndarray[Any, Any], types: np.ndarray[Any, Any]
    ) -> np.ndarray[Any, np.dtype[np.float32]]:
        """The last hidden states, (rows, tokens, width), for int64 matrices."""
        feed = {"input_ids": ids, "attention_mask": mask}
        if self.token_types:
            feed["token_type_ids"] = types
        return np.asarray(self.session.run(["hidden"], feed)[0], dtype=np.float32)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "onebox" / "onnx"


def load(transformer: Any, model_path: Path, token_types: bool, cache_dir: Path) -> OnnxForward:
    """A one-thread session for ``transformer`` (the torch module under a sentence-transformers
    model loaded from ``model_path``), from the cached graph or a fresh export.

    Raises :class:`OnnxUnavailable` when onnxruntime or onnx is missing or the export fails."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise OnnxUnavailable("onnxruntime is not installed (pip install onnxruntime)") from exc
    file = cache_dir / f"{_digest(model_path, token_types)}.onnx"
    if file.is_file():
        try:
            return OnnxForward(_session(onnxruntime, file), token_types, file)
        except Exception:
            logger.warning("The cached ONNX graph %s does not load; exporting again", file)
    try:
        return _export_and_load(onnxruntime, transformer, token_types, file)
    except OnnxUnavailable:
        raise
    except Exception as exc:  # onnxruntime refusing the graph, no writable folder at all
        raise OnnxUnavailable(f"the exported graph does not load: {exc}") from exc


def _export_and_load(
    onnxruntime: Any, transformer: Any, token_types: bool, file: Path
) -> OnnxForward:
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(file.parent, os.W_OK):  # a read-only file system, even for root
            raise PermissionError(f"{file.parent} is not writable")
        partial = file.with_name(f"{file.name}.{os.getpid()}.partial")
        _export(transformer, token_types, partial)
        os.replace(partial, file)  # atomic: another process never reads half a graph
        return OnnxForward(_session(onnxruntime, file), token_types, file)
    except OSError:
        logger.info("Cannot cache the ONNX graph in %s; exporting for this process", file.parent)
    with tempfile.TemporaryDirectory(prefix="onebox-onnx-") as scratch:
        own = Path(scratch) / "model.onnx"
        _export(transformer, token_types, own)
        return OnnxForward(_session(onnxruntime, own), token_types, None)


def _session(onnxruntime: Any, file: Path) -> Any:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # the quick lane: one thread, like its torch pass
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: no per-session notices in server logs
    return onnxruntime.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])


def _export(transformer: Any, token_types: bool, target: Path) -> None:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - the local model needs torch anyway
        raise OnnxUnavailable("torch is not installed") from exc

    class _Hidden(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *inputs: Any) -> Any:
            names = ("input_ids", "attention_mask", "token_type_ids")
            return self.inner(**dict(zip(names, inputs, strict=False))).last_hidden_state

    # A padded row, so the traced graph keeps the attention mask (a batch without padding
    # takes a branch that drops it).
    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.long)
    inputs = [ids, (ids != 0).long()] + ([torch.zeros_like(ids)] if token_types else [])
    names = ["input_ids", "attention_mask", "token_type_ids"][: len(inputs)]
    module = _Hidden(copy.deepcopy(transformer).eval())
    try:
        # The exporter warns about every Python branch it traces through; the agreement
        # check against encode() is what tells whether one mattered.
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module, tuple(inputs), str(target),
                input_names=names, output_names=["hidden"],
                dynamic_axes={name: {0: "rows", 1: "tokens"} for name in [*names, "hidden"]},
                opset_version=OPSET, dynamo=False,
            )  # fmt: skip
    except Exception as exc:
        with contextlib.suppress(OSError):
            target.unlink()
        raise OnnxUnavailable(f"ONNX export failed: {exc}") from exc


def _digest(model_path: Path, token_types: bool) -> str:
    """Names the graph by what it was made from: the model's files (name, size, modification
    time) and the versions of the packages that export and run it."""
    digest = hashlib.sha256(f"{EXPORT_FORMAT}:{OPSET}:{token_types}".encode())
    for name in _RUNTIME_PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            digest.update(f"{name}={importlib.metadata.version(name)};".encode())
    for file in sorted(p for p in model_path.rglob("*") if p.is_file()):
        stat = file.stat()
        relative = file.relative_to(model_path).as_posix()
        digest.update(f"{relative}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:32]
