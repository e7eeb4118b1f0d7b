"""ONNX export of a published version into a Triton-style model repository.

``<repo>/<model name>/<version>/model.onnx`` (plus ``export.json``: source checkpoint,
checksum, max deviation) and ``<repo>/<model name>/config.pbtxt``. The graph is written
directly with ``onnx.helper`` (no exporter dependency): the embedding block (one gather from
the stacked tables, mean pooling of the multi-valued fields over non-padding ids, and the
``dot`` interaction as MatMul of the field vectors with their transpose + a Gather of the upper
triangle) and, per task, the compacted subnetwork of :func:`lt4rec.sparse.compact` (unread
inputs, dead and constant neurons removed; the surviving small matrices as dense ``Gemm``s;
ONNX has no standard sparse matmul). Inputs are the ENCODED features (hashed ids and
standardised dense values, :class:`~streamer.serve.instances.InstanceEncoder`): ``sparse``
int64 ``[B, n_sparse]``, ``multi`` int64 ``[B, n_multi, L]``, ``dense`` float32 ``[B,
n_dense]``; outputs ``ctr``, ``cvr``, ``ctcvr`` float32 ``[B]`` probabilities.

The model is verified with onnxruntime against torch (the dense masked model) on random
and all-missing inputs before the version directory is renamed into place (last step, so
a Triton poller never sees a half-written version); an existing version is left as it is.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from checkpoints import Checkpoint, verify_file
from checkpoints.format import fsync_path
from lt4rec.data.batch import TASKS, Batch
from lt4rec.models import SparseSharing
from lt4rec.sparse import CompactPlan, compact

OPSET = 17
TOLERANCE = 1e-5


class OnnxExportError(RuntimeError):
    """The version cannot be exported, or the exported graph disagrees with torch."""


def _graph(model: SparseSharing) -> Any:
    from onnx import TensorProto, helper, numpy_helper

    s = model.schema
    nodes: list[Any] = []
    inits: list[Any] = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, name))
        return name

    def node(op: str, inputs: list[str], out: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    emb = model.embeddings
    table = const("embeddings", emb.weight.detach().numpy().astype(np.float32))
    offsets = emb.offsets.numpy().astype(np.int64)
    parts: list[str] = []
    fields: list[str] = []  # [B, n, dim] blocks of field vectors, in the model's order
    if s.n_sparse:
        ids = node("Add", ["sparse", const("sparse_offsets", offsets[: s.n_sparse])], "sparse_ids")
        vec = node("Gather", [table, ids], "sparse_vec", axis=0)  # [B, n_sparse, dim]
        fields.append(vec)
        parts.append(node("Flatten", [vec], "sparse_flat", axis=1))
    if s.n_multi:
        moff = const("multi_offsets", offsets[s.n_sparse :].reshape(1, -1, 1))
        vec = node("Gather", [table, node("Add", ["multi", moff], "multi_ids")], "multi_vec")
        pad = node("Equal", ["multi", const("zero_id", np.array(0, np.int64))], "multi_pad")
        keep = node("Cast", [node("Not", [pad], "multi_keep_b")], "multi_keep", to=1)
        keep4 = node("Unsqueeze", [keep, const("axis_last", np.array([3]))], "multi_keep4")
        axis2 = const("axis2", np.array([2]))
        total = node("ReduceSum", [node("Mul", [vec, keep4], "multi_masked"), axis2], "msum",
                     keepdims=0)  # fmt: skip
        count = node("ReduceSum", [keep4, axis2], "mcount", keepdims=0)  # [B, n_multi, 1]
        count = node("Max", [count, const("one", np.array(1.0, np.float32))], "mcount1")
        pooled = node("Div", [total, count], "multi_pooled")  # [B, n_multi, dim]
        fields.append(pooled)
        parts.append(node("Flatten", [pooled], "multi_flat", axis=1))
    if s.n_dense:
        parts.append("dense")
    if emb.interaction is not None and fields:  # DLRM dot products, upper triangle
        f = node("Concat", fields, "fields", axis=1) if len(fields) > 1 else fields[0]
        ft = node("Transpose", [f], "fields_t", perm=[0, 2, 1])  # [B, dim, F]
        gram = node("MatMul", [f, ft], "gram")  # [B, F, F]
        n_f = s.n_sparse + s.n_multi
        flat = node("Flatten", [gram], "gram_flat", axis=1)  # [B, F * F]
        pairs = (emb.interaction.rows * n_f + emb.interaction.cols).numpy().astype(np.int64)
        parts.append(node("Gather", [flat, const("pair_index", pairs)], "pairs", axis=1))
    x = node("Concat", parts, "x", axis=1) if len(parts) > 1 else parts[0]
    probs = {}
    for task in TASKS:
        logit = _task(compact(model.export_task_layers(task)), task, x, node, const)
        probs[task] = node("Sigmoid", [logit], task)
    node("Mul", [probs["ctr"], probs["cvr"]], "ctcvr")

    def io(name: str, dtype: int, shape: list[Any]) -> Any:
        return helper.make_tensor_value_info(name, dtype, shape)

    inputs = [
        io("sparse", TensorProto.INT64, ["B", s.n_sparse]),
        io("multi", TensorProto.INT64, ["B", s.n_multi, s.multi_max_len]),
        io("dense", TensorProto.FLOAT, ["B", s.n_dense]),
    ]
    outputs = [io(t, TensorProto.FLOAT, ["B"]) for t in ("ctr", "cvr", "ctcvr")]
    graph = helper.make_graph(nodes, "lt4rec", inputs, outputs, inits)
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8,
        producer_name="lt4rec",
    )  # fmt: skip


def _task(plan: CompactPlan, task: str, x: str, node: Any, const: Any) -> str:
    """The compacted MLP of ``task`` on ``x`` [B, in] -> logits [B]."""
    if not plan.layers:  # the output does not depend on the input: constant + 0 * x
        zero = const(f"{task}_zero", np.zeros(1, np.float32))
        axis1 = const(f"{task}_axis1", np.array([1]))
        zeros = node("ReduceSum", [node("Mul", [x, zero], f"{task}_x0"), axis1], f"{task}_0",
                     keepdims=0)  # fmt: skip
        c = const(f"{task}_c", np.array(float(plan.constant[0]), np.float32))
        return node("Add", [zeros, c], f"{task}_logit")
    h = x
    if plan.input_index.numel() != plan.in_features:
        idx = const(f"{task}_inputs", plan.input_index.numpy().astype(np.int64))
        h = node("Gather", [x, idx], f"{task}_in", axis=1)
    for i, ly in enumerate(plan.layers):
        w = const(f"{task}_w{i}", ly.weight.numpy().astype(np.float32))  # [out, in]
        b = const(f"{task}_b{i}", ly.bias.numpy().astype(np.float32))
        h = node("Gemm", [h, w, b], f"{task}_h{i}", transB=1)
        if ly.activation == "relu":
            h = node("Relu", [h], f"{task}_r{i}")
    return node("Reshape", [h, const(f"{task}_shape", np.array([-1]))], f"{task}_logit")


def _inputs(model: SparseSharing, n: int, seed: int) -> Batch:
    s = model.schema
    g = torch.Generator().manual_seed(seed)
    multi = torch.randint(0, s.hash_buckets, (n, s.n_multi, s.multi_max_len), generator=g)
    multi[: n // 4] = 0  # rows without any multi-valued id (the padding path)
    return Batch(
        sparse=torch.randint(0, s.hash_buckets, (n, s.n_sparse), generator=g),
        multi=multi,
        dense=torch.randn(n, s.n_dense, generator=g),
        click=torch.zeros(n),
        conversion=torch.zeros(n),
    )


def verify_onnx(path: Path, model: SparseSharing, n: int = 256, seed: int = 0) -> float:
    """Max |onnxruntime - torch| over the three outputs; raises when above TOLERANCE."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = _inputs(model, n, seed)
    feeds = {"sparse": batch.sparse.numpy(), "multi": batch.multi.numpy(),
             "dense": batch.dense.numpy()}  # fmt: skip
    got = dict(zip(("ctr", "cvr", "ctcvr"), session.run(["ctr", "cvr", "ctcvr"], feeds),
                   strict=True))  # fmt: skip
    with torch.no_grad():
        logits = model.eval()(batch)
    ctr, cvr = torch.sigmoid(logits["ctr"]), torch.sigmoid(logits["cvr"])
    want = {"ctr": ctr, "cvr": cvr, "ctcvr": ctr * cvr}
    worst = max(float(np.abs(got[k] - want[k].numpy()).max()) for k in want)
    if not worst <= TOLERANCE:
        raise OnnxExportError(f"{path}: onnxruntime differs from torch by {worst:.3g}")
    return worst


TRITON_CONFIG = """name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: 0
input [
  {{ name: "sparse" data_type: TYPE_INT64 dims: [ -1, {n_sparse} ] }},
  {{ name: "multi" data_type: TYPE_INT64 dims: [ -1, {n_multi}, {multi_len} ] }},
  {{ name: "dense" data_type: TYPE_FP32 dims: [ -1, {n_dense} ] }}
]
output [
  {{ name: "ctr" data_type: TYPE_FP32 dims: [ -1 ] }},
  {{ name: "cvr" data_type: TYPE_FP32 dims: [ -1 ] }},
  {{ name: "ctcvr" data_type: TYPE_FP32 dims: [ -1 ] }}
]
version_policy: {{ latest {{ num_versions: 1 }} }}
"""


def export_checkpoint(ckpt: Checkpoint, name: str, version: int, repo: Path,
                      source: dict[str, Any]) -> Path:  # fmt: skip
    """Write and verify ``<repo>/<name>/<version>/model.onnx``; returns its path."""
    import onnx

    model = ckpt.build_model().eval()
    if not isinstance(model, SparseSharing):
        raise OnnxExportError(f"{ckpt.model_name}: only sparse_sharing has per-task subnetworks")
    final = repo / name / str(version)
    if (final / "model.onnx").is_file():
        return final / "model.onnx"  # versions are immutable: exported once
    (repo / name).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=repo / name))
    try:
        path = tmp / "model.onnx"
        proto = _graph(model)
        onnx.checker.check_model(proto)
        path.write_bytes(proto.SerializeToString())
        deviation = verify_onnx(path, model)
        (tmp / "export.json").write_text(
            json.dumps({**source, "version": version, "max_abs_deviation": deviation}, indent=2)
        )
        for f in (path, tmp / "export.json", tmp):
            fsync_path(f)
        config = repo / name / "config.pbtxt"
        s = model.schema
        text = TRITON_CONFIG.format(name=name, n_sparse=s.n_sparse, n_multi=s.n_multi,
                                    multi_len=s.multi_max_len, n_dense=s.n_dense)  # fmt: skip
        if not config.is_file() or config.read_text() != text:
            staged = config.with_name(f".config.pbtxt.{os.getpid()}")
            staged.write_text(text)
            os.replace(staged, config)
        os.rename(tmp, final)  # the version appears complete, or not at all
        fsync_path(repo / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final / "model.onnx"


def export_version(path: str, sha256: str, name: str, version: int, repo: Path) -> Path:
    """Verify a registry version's file and export it (see :func:`export_checkpoint`)."""
    ckpt = verify_file(path, sha256)
    return export_checkpoint(ckpt, name, version, Path(repo),
                             {"checkpoint": str(path), "sha256": sha256})  # fmt: skip
