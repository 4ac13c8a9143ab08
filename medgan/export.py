"""Export a trained run's inference networks for deployment: ONNX or TorchScript.

``medgan export RUN --format onnx --out DIR`` writes, for every network the run exported
(``RUN/<name>/config.json`` + ``model.safetensors``):

- ``DIR/<name>.onnx`` (PyTorch's dynamo exporter, opset of the installed ``onnxscript``) or
  ``DIR/<name>.pt`` (TorchScript, traced), in eval mode, the batch axis free and, for
  image-to-image networks (enhancement, segmentation, the anomaly restorer), the image's
  height and width free;
- ``DIR/<name>.json``: the network's ``config.json`` (its intensity range, classes, size
  multiple ... what preparing an input and reading an output need), with the inputs'
  names, shapes and dtypes and the largest difference between the exported network's output
  and PyTorch's on the example input (``check``), measured after writing (onnxruntime for
  ONNX when it is installed, ``torch.jit.load`` for TorchScript).

The example inputs follow from each network's config: a generator with a latent size takes
``z`` ``(B, z_dim)`` (and ``labels`` ``(B,)`` when class-conditional), every other network an
image ``(B, C, H, W)`` in [-1, 1] at its training size.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medgan.errors import MedganError

__all__ = ["FORMATS", "example_inputs", "export_run"]

FORMATS = ("onnx", "torchscript")
_SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}
#: networks that map an image to an image (or to per-pixel logits) of any size
_SPATIAL = {("enhance", "generator"), ("segment", "segmentor"), ("segment", "teacher"), ("anomaly", "restorer")}


def example_inputs(info: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, dict[int, Any]]]:
    """``(inputs by name, their free axes)`` for the exported network ``info`` describes."""
    net, task, name = info.get("net") or {}, info.get("task", "synth"), info.get("network", "generator")
    free = torch.export.Dim.DYNAMIC
    if name == "generator" and "z_dim" in net:
        inputs = {"z": torch.randn(2, int(net["z_dim"]), generator=torch.Generator().manual_seed(0))}
        if int(net.get("num_classes", 0) or 0) > 0:
            inputs["labels"] = torch.arange(2) % int(net["num_classes"])
        return inputs, {key: {0: free} for key in inputs}
    channels = int(net.get("in_channels") or info.get("channels") or net.get("channels") or 1)
    size = net.get("image_size") or (info.get("resize") or {}).get("size") or 64
    size = int(size[0] if isinstance(size, (list, tuple)) else size)
    multiple = int(info.get("multiple", 1) or 1)
    size = max(multiple, size // multiple * multiple)
    image = torch.rand(2, channels, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    axes = {0: free, 2: free, 3: free} if (task, name) in _SPATIAL else {0: free}
    return {"image": image}, {"image": axes}


def _outputs(out: Any) -> list[torch.Tensor]:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _export_one(net: torch.nn.Module, inputs: dict[str, torch.Tensor], axes: dict[str, dict[int, Any]], fmt: str, file: Path) -> None:
    args = tuple(inputs.values())
    net.requires_grad_(False)  # an inference graph: no training-only paths (e.g. a straight-through clamp's)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():  # the exporters narrate every stage
        warnings.simplefilter("ignore")
        if fmt == "onnx":
            torch.onnx.export(net, args, str(file), dynamo=True, input_names=list(inputs), output_names=["output"],
                              dynamic_shapes=tuple(axes[k] for k in inputs), external_data=False)
        else:
            torch.jit.trace(net, args, check_trace=False).save(str(file))


def _check(file: Path, fmt: str, inputs: dict[str, torch.Tensor], expected: list[torch.Tensor]) -> float | None:
    """Largest absolute difference between the written network's outputs and PyTorch's on
    a batch of another size (``None``: onnxruntime not installed)."""
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = _outputs(torch.jit.load(str(file))(*inputs.values()))
        return max(float((g - e).abs().max()) for g, e in zip(got, expected))
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(str(file), providers=["CPUExecutionProvider"])
    got = session.run(None, {k: v.numpy() for k, v in inputs.items()})
    return max(float(np.abs(g - e.numpy()).max()) for g, e in zip(got, expected))


def export_run(run: str | Path, fmt: str, out: str | Path, overwrite: bool = False) -> list[Path]:
    """Write every exported network of ``run`` as ``fmt`` into the new folder ``out`` (see
    the module docstring); returns the files written.

    Raises:
        MedganError: an unknown format, a folder without exported networks, the ONNX
            exporter's packages missing, or a network the exporter cannot trace.
    """
    from medgan.io.output import atomic_dir
    from medgan.tasks import TASKS
    from medgan.train.checkpoint import exported_folders, load_network

    if fmt not in FORMATS:
        raise MedganError(f"unknown export format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
    if fmt == "onnx":
        try:
            import onnxscript  # noqa: F401  (torch's ONNX exporter needs it)
        except ImportError:
            raise MedganError("ONNX export needs the onnx and onnxscript packages", hint="pip install 'medgan[export]'") from None
    folders = exported_folders(run)
    if not folders:
        raise MedganError("no exported networks here (RUN/<name>/config.json + model.safetensors)", path=run,
                          hint="give a run folder made by medgan train")
    written = []
    with atomic_dir(out, overwrite) as tmp:
        for name, folder in folders.items():
            info = json.loads((folder / "config.json").read_text())
            task = TASKS.get(info.get("task", "synth"))
            if task is None:
                raise MedganError(f"network {name} belongs to a task this medgan does not know ({info.get('task')!r})", path=folder)
            net, info = load_network(folder, lambda i, n=name: task.build_network(n, i))
            inputs, axes = example_inputs({**info, "network": info.get("network", name)})
            file = tmp / f"{name}{_SUFFIX[fmt]}"
            try:
                _export_one(net, inputs, axes, fmt, file)
            except Exception as error:  # the exporters raise many kinds; one line says which network and why
                first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
                raise MedganError(f"cannot export network {name} to {fmt}: {first}", path=folder,
                                  hint="export another format, or report the network that fails") from None
            check = {k: (torch.cat([v, v[:1]]) if v.ndim else v) for k, v in inputs.items()}  # another batch size than traced
            with torch.no_grad():
                expected = _outputs(net(*check.values()))
            difference = _check(file, fmt, check, expected)
            record = {**info, "format": fmt, "file": file.name,
                      "inputs": [{"name": k, "shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch."),
                                  "free_axes": sorted(axes[k])} for k, v in inputs.items()],
                      "outputs": [{"shape_at_check": list(e.shape)} for e in expected],
                      "check": {"max_abs_difference": difference, "batch": int(next(iter(check.values())).shape[0])}}
            (tmp / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
            written.append(Path(out) / file.name)
    return written
