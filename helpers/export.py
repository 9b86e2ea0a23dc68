"""Deploying a trained model: export, reload, compare, and the papers' ``predict`` command line.

The paper re-implementations (``papers/``) each ship two ways to predict:

* from the saved model (:func:`save_model` / :func:`load_model`: the weights with the keyword
  arguments that build the model, ``checkpoints/<mode>/<name>_model.pt``, see :func:`model_path`);
* from a self-contained **export** (``torch.export``, a ``.pt2`` file): the network's graph,
  its weights and a small metadata dict (image size, class names...), loadable without the
  Python class that defined it::

      from helpers.export import export_metadata, export_model, load_exported, max_difference

      export_model(model, example_images, "vit.pt2", metadata={"image_size": 28})  # batch size stays free
      exported = load_exported("vit.pt2")                 # a callable module (it has no eval()/train())
      export_metadata("vit.pt2")                          # {"image_size": 28}
      max_difference(model, exported, test_images)        # 0.0 up to float rounding

What is exported is the *network* (images in, raw tensors out).  Steps that depend on the
data's values -- non-maximum suppression, thresholds -- stay outside the graph, in the paper's
plain-tensor ``decode`` functions, and run the same after the eager model and after the export.

:func:`paper_main` is the one implementation of every paper's command line,
``python -m papers.<name> predict IMAGE... [--checkpoint P | --export P]`` and ``... export``
(:func:`predict_parser` and :func:`command_model` its front end; :func:`read_images`,
:func:`write_json` and :func:`save_annotated` read the inputs and write the answers).  A paper
gives only how its network answers.  Detectors' boxes are written in one convention,
:data:`BOX_FORMAT` (``x1, y1, x2, y2`` in the original image's pixels), stated in the JSON.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import warnings
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BACKGROUND",
    "BOX_FORMAT",
    "EXPORT_SUFFIX",
    "ImageReadError",
    "UnsafeExportError",
    "check_export_archive",
    "classification_records",
    "command_model",
    "default_model_path",
    "detection_records",
    "export_metadata",
    "export_model",
    "export_with_metadata",
    "is_exported",
    "load_exported",
    "load_model",
    "max_difference",
    "model_path",
    "output_folder",
    "output_names",
    "paper_main",
    "predict_parser",
    "read_good_images",
    "read_image",
    "read_images",
    "run_command",
    "save_annotated",
    "save_model",
    "write_json",
]

EXPORT_SUFFIX = ".pt2"
METADATA_FILE = "dl4cv_metadata.json"   # name of the metadata entry inside an export
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _check_example(example) -> torch.Tensor:
    if not isinstance(example, torch.Tensor) or example.dim() != 4 or not example.is_floating_point():
        got = f"{example.dtype} {tuple(example.shape)}" if isinstance(example, torch.Tensor) else type(example).__name__
        raise ValueError(f"example must be a float image batch (N, C, H, W), got {got}")
    if example.shape[0] < 2:
        # torch.export specialises a dimension of size 1, so a batch of one would fix the batch size.
        raise ValueError(f"example must hold at least 2 images so the batch size stays free, got {example.shape[0]}")
    return example


def export_model(model: nn.Module, example: torch.Tensor, path, metadata: dict | None = None) -> Path:
    """Export ``model`` (in eval mode) with ``torch.export`` to ``path`` (``.pt2``); the batch size stays free.

    Args:
        model: the network; called as ``model(images)`` with ``images (N, C, H, W)``.
        example: a float batch ``(N, C, H, W)``, ``N >= 2``, of the image size the export will take
            (height, width and channels are fixed by it).
        path: where to write; the folder is created.
        metadata: plain JSON data stored inside the file (image size, class names, decoding
            settings...), read back by :func:`export_metadata`: the export stays one self-contained file.

    Returns:
        The path written.
    """
    example = _check_example(example)
    path = Path(path)
    if path.suffix != EXPORT_SUFFIX:
        raise ValueError(f"export path must end in {EXPORT_SUFFIX!r}, got {str(path)!r}")
    was_training = model.training
    model.eval()
    try:
        batch = torch.export.Dim("batch", min=1, max=65536)
        with warnings.catch_warnings():
            # Tensors a model keeps as plain attributes for plots (attention weights) are not part of
            # the exported graph; torch.export warns about each of them.  strict=False traces with
            # Python itself (recent torch's default; torch 2.5 defaults to the strict tracer, which
            # refuses those assignments outright).
            warnings.filterwarnings("ignore", message="The tensor attributes .* were assigned during export")
            program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},), strict=False)
    finally:
        model.train(was_training)
    text = json.dumps({} if metadata is None else metadata)   # fails early on data JSON cannot hold
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, str(path), extra_files={METADATA_FILE: text})
    return path


class UnsafeExportError(ValueError):
    """An export that could run code when loaded, or that is not an export at all."""


# The entries a torch.export archive of one of the course's models holds, in torch 2.5's layout
# (serialized_*) and in the later one (<archive>/models, /data/weights...).  Anything else -- an
# AOTInductor library, say, which loading would run as native code -- is refused.
_EXPORT_ENTRY = re.compile(r"""(?x) ^ (?: (?:[^/]+/)? (?: archive_format | archive_version | byteorder | version
                                                      | \.data/version | \.data/serialization_id
                                                      | models/[^/]+\.json | data/(?:weights|constants)/[^/]+
                                                      | data/sample_inputs/[^/]+\.pt | extra/[^/]+ )
                                         | serialized_(?:exported_program\.json | state_dict\.pt | constants\.pt
                                                        | example_inputs\.pt)
                                         | extra_files/[^/]+ ) $""")
# torch.export keeps example inputs (and, in torch 2.5's layout, the weights and constants) as
# torch.save archives; its payload configs may also ask for pickled weights or custom objects,
# which the course's models never need.
_PICKLED_ENTRY_SUFFIX = ".pt"
_CODE_PAYLOAD_PREFIXES = ("custom_obj", "opaque_obj")


def check_export_archive(path) -> None:
    """Refuse an export whose loading could run code: check it before ``torch.export.load`` reads it.

    ``torch.export.load`` unpickles some of a ``.pt2`` archive's entries with ``weights_only=False``,
    and unpickling can call any function: a crafted file would run its code the moment it is
    loaded.  So: the archive may hold only the entries an export of a plain network has; every
    pickled entry (``*.pt``) must load with ``torch.load(weights_only=True)``, which reads tensors
    and plain data and refuses anything else without running it; and the payload configs may not
    ask for pickled weights or custom objects.  Exports written by :func:`export_model` pass.

    Raises:
        UnsafeExportError: naming the file and the entry.
    """
    path = Path(path)
    advice = "Load only exports that you or the course wrote (python -m papers.<name> export)."
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise UnsafeExportError(f"{path} is not a torch.export archive ({error}). {advice}") from None
    with archive:
        for info in archive.infolist():
            name = info.filename
            if not _EXPORT_ENTRY.match(name):
                raise UnsafeExportError(f"{path} holds {name!r}, which no export of a plain network has; "
                                        f"refused. {advice}")
            try:
                data = archive.read(info)
            except (zipfile.BadZipFile, OSError, ValueError) as error:   # a CRC mismatch: damaged
                raise UnsafeExportError(f"{path} is damaged: its entry {name!r} cannot be read ({error}). "
                                        f"{advice}") from None
            if name.endswith(_PICKLED_ENTRY_SUFFIX):
                try:
                    torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
                except Exception:
                    raise UnsafeExportError(f"{path} holds a pickled entry {name!r} with objects other than "
                                            f"tensors and plain data, which loading would run; refused. "
                                            f"{advice}") from None
            elif name.endswith("_config.json"):
                try:
                    entries = dict(json.loads(data).get("config", {}))
                except (ValueError, AttributeError, TypeError):
                    raise UnsafeExportError(f"{path} is damaged: {name!r} is not a payload config. "
                                            f"{advice}") from None
                for key, meta in entries.items():
                    meta = meta if isinstance(meta, dict) else {}
                    if meta.get("use_pickle") or str(meta.get("path_name", "")).startswith(_CODE_PAYLOAD_PREFIXES):
                        raise UnsafeExportError(f"{path} stores {key!r} as a pickled object ({name}), which "
                                                f"loading would run; refused. {advice}")


def _load_checked(path, **kwargs):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no export at {path}; write one with `python -m papers.<name> export`")
    check_export_archive(path)
    return torch.export.load(str(path), **kwargs)


def export_metadata(path) -> dict:
    """The ``metadata`` dict :func:`export_model` stored in the export at ``path`` (``{}`` if none).

    The archive is checked first (:func:`check_export_archive`).
    """
    extra = {METADATA_FILE: ""}
    _load_checked(path, extra_files=extra)
    return json.loads(extra[METADATA_FILE]) if extra[METADATA_FILE] else {}


def load_exported(path) -> nn.Module:
    """Load an export written by :func:`export_model` as a callable module (no Python class needed).

    The archive is checked first (:func:`check_export_archive`): an export that could run code
    when loaded is refused.  Load exports that you or the course wrote.
    """
    return _load_checked(path).module()


def model_path(name: str, cfg=None) -> Path:
    """Where a notebook keeps its trained model for inference: ``<checkpoint_dir>/<fast|full>/<name>_model.pt``."""
    from helpers.train import checkpoint_path

    return checkpoint_path(f"{name}_model", cfg)


def save_model(model: nn.Module, config: dict, path) -> Path:
    """Save ``model``'s weights with the keyword arguments that build it (``config``: plain values only).

    The file loads with ``torch.load(..., weights_only=True)`` and ends with a checksum;
    :func:`load_model` checks it and rebuilds the model.
    """
    from helpers.train import save_checkpoint

    if not isinstance(config, dict) or not all(isinstance(k, str) for k in config):
        raise TypeError(f"config must be a dict of keyword arguments, got {type(config).__name__}")
    return save_checkpoint(path, model, config=dict(config))


def load_model(path, build) -> nn.Module:
    """Rebuild a model saved by :func:`save_model`: ``build(**config)``, weights loaded, eval mode."""
    from helpers.train import load_verified

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no saved model at {path}; run the paper's notebook first (it saves one)")
    saved = load_verified(path, "saved model")
    if not isinstance(saved, dict) or "config" not in saved or "model" not in saved:
        raise ValueError(f"{path} was not written by helpers.export.save_model (no 'config' / 'model' entries)")
    model = build(**saved["config"])
    try:
        model.load_state_dict(saved["model"])
    except RuntimeError as error:     # sizes or names that the saved config does not build
        raise ValueError(f"{path}: the saved weights do not fit the model its settings build ({error}); "
                         "pass a model saved by save_model") from None
    return model.eval()


def is_exported(model: nn.Module) -> bool:
    """True for a module loaded by :func:`load_exported` (a graph: it has no ``eval()`` / ``train()`` modes)."""
    return isinstance(model, torch.fx.GraphModule)


def _flat_outputs(output) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in _flat_outputs(item)]
    if isinstance(output, dict):
        return [t for key in sorted(output) for t in _flat_outputs(output[key])]
    raise TypeError(f"model outputs must be tensors, or tuples / lists / dicts of them, got {type(output).__name__}")


@torch.no_grad()
def max_difference(model: nn.Module, exported: nn.Module, images: torch.Tensor) -> float:
    """Largest absolute difference between every output of the eager ``model`` and of ``exported`` on ``images``."""
    was_training = model.training
    model.eval()
    try:
        eager, other = _flat_outputs(model(images)), _flat_outputs(exported(images))
    finally:
        model.train(was_training)
    if len(eager) != len(other) or any(a.shape != b.shape for a, b in zip(eager, other, strict=True)):
        raise ValueError(f"outputs differ in structure: {[tuple(a.shape) for a in eager]} vs "
                         f"{[tuple(b.shape) for b in other]}")
    return max(float((a - b).abs().max()) if a.numel() else 0.0 for a, b in zip(eager, other, strict=True))


class ImageReadError(ValueError):
    """An image file that cannot be used; the message names it."""


#: What shows through transparent pixels: black, the background of the datasets the models learn.
BACKGROUND = 0.0


def read_image(path, size: int, channels: int) -> torch.Tensor:
    """Read one PNG / JPEG file as a float image ``(channels, size, size)`` in ``[0, 1]``.

    Every mode is read by its own range: 8-bit and 16-bit grey, palette, RGB; transparent pixels
    (an alpha channel, or a palette's transparent colour) are composited on :data:`BACKGROUND`.
    The image becomes grey (``channels=1``, the mean of RGB) or RGB (``channels=3``, grey
    repeated) and is squashed to ``size x size`` (bilinear, antialiased), as the models were trained.

    Raises:
        ImageReadError: the file is missing, not a PNG / JPEG, truncated or unreadable (named).
    """
    import numpy as np
    from PIL import Image

    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such image file")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise ImageReadError(f"{path}: expected a {' / '.join(IMAGE_SUFFIXES)} image")
    try:
        with Image.open(path) as file:
            file.load()
            if file.mode == "P":
                file = file.convert("RGBA")
            if file.mode in ("I;16", "I;16B", "I;16L", "I"):
                grey = np.asarray(file, dtype=np.float32)
                peak = 65535.0 if file.mode.startswith("I;16") or grey.max() > 255 else 255.0
                rgb, alpha = np.repeat((grey / peak)[..., None], 3, axis=2), None
            else:
                has_alpha = file.mode in ("RGBA", "LA", "PA") or "transparency" in file.info
                rgba = np.asarray(file.convert("RGBA" if has_alpha else "RGB"), dtype=np.float32) / 255.0
                rgb, alpha = rgba[..., :3], (rgba[..., 3:] if has_alpha else None)
    except (OSError, SyntaxError, ValueError) as error:   # PIL's errors for damaged or foreign files
        raise ImageReadError(f"{path}: cannot read the image ({error})") from None
    if alpha is not None:
        rgb = rgb * alpha + BACKGROUND * (1 - alpha)
    image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)
    if channels == 1:
        image = image.mean(0, keepdim=True)
    image = F.interpolate(image[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]
    return image.clamp(0, 1)


def read_images(paths, size: int, channels: int) -> torch.Tensor:
    """:func:`read_image` for every path: a float batch ``(N, channels, size, size)`` in ``[0, 1]``."""
    batch = [read_image(path, size, channels) for path in paths]
    if not batch:
        raise ValueError("give at least one image")
    return torch.stack(batch)


def read_good_images(paths, size: int, channels: int, report=None) -> tuple[list[Path], torch.Tensor]:
    """The command lines' reader: each image that cannot be read is reported and skipped.

    Returns:
        ``(paths read, batch (N, channels, size, size))``.

    Raises:
        ImageReadError: when no image at all could be read.
    """
    import sys

    paths = [Path(path) for path in paths]
    report = report or (lambda message: print(f"skipped {message}", file=sys.stderr))
    good, batch = [], []
    for path in paths:
        try:
            batch.append(read_image(path, size, channels))
            good.append(path)
        except ImageReadError as error:
            report(str(error))
    if not batch:
        raise ImageReadError(f"none of the images could be read: {', '.join(map(str, paths))}")
    return good, torch.stack(batch)


def output_names(paths) -> list[str]:
    """A distinct file stem per input path: the stem, then ``stem_2``, ``stem_3``... for repeats."""
    names, seen = [], set()
    for path in map(Path, paths):
        name, n = path.stem, 1
        while name in seen:
            n += 1
            name = f"{path.stem}_{n}"
        seen.add(name)
        names.append(name)
    return names


def write_json(payload, path) -> Path:
    """Write ``payload`` (plain numbers, strings, lists, dicts) as indented JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def save_annotated(image: torch.Tensor, prediction: dict, class_names, path) -> Path:
    """Save ``image (C, H, W)`` with a detector's ``prediction`` (``boxes``, ``labels``, ``scores``) drawn, as PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from helpers import vis

    fig, ax = plt.subplots(figsize=(4, 4))
    vis.imshow(ax, image)
    vis.draw_boxes(ax, prediction["boxes"], prediction["labels"], prediction["scores"], class_names)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def command_model(args, name: str, build, metadata, required=("image_size",)) -> tuple[nn.Module, dict]:
    """The network a paper's command line runs, with the settings it needs (image size, class names...).

    With ``--export``: the export (:func:`load_exported`) and the metadata stored in it, which must
    hold every key of ``required``.  Otherwise the saved model (``--checkpoint``, by default
    ``checkpoints/full/<name>_model.pt``) rebuilt by :func:`load_model` and ``metadata(model)``.

    Args:
        args: parsed :func:`predict_parser` arguments.
        name: the paper (``"vit"``...); build: its model class; metadata: ``model -> dict``.
    """
    if args.command == "predict":
        output_folder(args.out, create=False)      # the arguments first, before a model is loaded
    if getattr(args, "export", None):
        export = Path(args.export)
        if export.suffix != EXPORT_SUFFIX:
            raise ValueError(f"--export takes a {EXPORT_SUFFIX} export, got {export}"
                             + ("; a saved model (.pt) goes to --checkpoint" if export.suffix == ".pt" else ""))
        if not export.is_file():
            raise FileNotFoundError(f"no export at {export}; write one with `python -m papers.{name} export`")
        meta = export_metadata(export)
        missing = [key for key in required if key not in meta]
        if missing:
            raise ValueError(f"{export} lacks {', '.join(missing)}: it is not an export of papers.{name}; write "
                             f"one with `python -m papers.{name} export` (or papers.{name}.save_export)")
        return load_exported(export), meta
    checkpoint = Path(args.checkpoint) if args.checkpoint else default_model_path(name)
    if checkpoint.suffix == EXPORT_SUFFIX:
        raise ValueError(f"--checkpoint takes a saved model (.pt), got the export {checkpoint}; use --export")
    try:
        model = load_model(checkpoint, build)
    except TypeError as error:     # build(**config) refused the saved settings: another model's file
        raise ValueError(f"{checkpoint} holds a model that papers.{name} cannot build ({error}): it was saved "
                         f"by another model; pass a {name} checkpoint") from None
    return model, metadata(model)


def default_model_path(name: str) -> Path:
    """The saved model ``predict`` uses without ``--checkpoint``: the newer of the full- and fast-mode ones.

    Raises:
        FileNotFoundError: neither exists (nothing is created).
    """
    from helpers.config import get_config

    folder = Path(get_config().checkpoint_dir)
    found = [p for p in (folder / "full" / f"{name}_model.pt", folder / "fast" / f"{name}_model.pt") if p.is_file()]
    if not found:
        raise FileNotFoundError(f"no saved {name} model in {folder / 'full'} or {folder / 'fast'}: run "
                                f"papers/{name}.ipynb (it saves one), or pass --checkpoint / --export")
    return max(found, key=lambda p: p.stat().st_mtime)


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def output_folder(path, create: bool = True) -> Path:
    """``--out`` of ``predict``: a folder (created unless ``create=False``); a file already there is refused."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {path} is a file; predict writes a folder there (give another name)")
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def run_command(main, argv=None) -> int:
    """Run a paper's ``main``; an error the user can fix prints one line (no traceback), exit code 2."""
    import sys

    from helpers.train import DamagedFileError

    try:
        return main(argv)
    except (FileNotFoundError, ValueError, DamagedFileError, UnsafeExportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def predict_parser(name: str, description: str, module: str | None = None, recipe=None,
                   predict: bool = True) -> argparse.ArgumentParser:
    """The command line every paper shares: ``predict IMAGE... (--checkpoint C | --export E) [--out DIR]``
    and ``export --checkpoint C --out FILE.pt2``; with a ``recipe`` (:class:`helpers.train_command.Recipe`)
    also ``train [...]``.  ``module``: the module run with ``-m`` (default ``papers.<name>``); ``predict=False``
    leaves out ``predict`` and ``export`` (a model trained from the command line only)."""
    prog = f"python -m {module or f'papers.{name}'}"
    parser = argparse.ArgumentParser(prog=prog, description=description)
    commands = parser.add_subparsers(dest="command", required=True)
    if recipe is not None:
        from helpers.train_command import add_train_command

        add_train_command(commands, prog)
    if not predict:
        return parser
    predict = commands.add_parser("predict", help="predict on image files, write predictions.json")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="PNG or JPEG files")
    source = predict.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", metavar="PATH",
                        help=f"a model saved by the notebook (default: the newer of checkpoints/full and "
                             f"checkpoints/fast/{name}_model.pt)")
    source.add_argument("--export", metavar="PATH", help=f"an export written by the export command ({EXPORT_SUFFIX})")
    predict.add_argument("--out", default=f"predictions_{name}", metavar="DIR",
                         help="folder for predictions.json (and annotated PNGs for detectors)")
    predict.add_argument("--score-thresh", type=_probability, default=0.3,
                         help="detectors: keep detections scoring at least this (0 to 1)")
    export = commands.add_parser("export", help=f"write a self-contained {EXPORT_SUFFIX} export of a checkpoint")
    export.add_argument("--checkpoint", metavar="PATH",
                        help=f"default: the newer of checkpoints/full and checkpoints/fast/{name}_model.pt")
    export.add_argument("--out", default=f"{name}{EXPORT_SUFFIX}", metavar="FILE")
    return parser


# --------------------------------------------------------------------------- the papers' one command line

#: How every detector's ``predictions.json`` gives its boxes (stated in the file as ``box_format``).
BOX_FORMAT = "x1, y1, x2, y2 in the original image's pixels"


def export_with_metadata(model: nn.Module, path, metadata: dict) -> Path:
    """Export a paper's network for the command line: :func:`export_model` on a random example of
    ``metadata["image_size"]`` (square) with ``metadata.get("in_channels", 3)`` channels, the
    metadata stored inside the file."""
    size, channels = metadata["image_size"], metadata.get("in_channels", 3)
    return export_model(model, torch.rand(2, channels, size, size), path, metadata=metadata)


def _original_size(path) -> tuple[int, int]:
    """``(width, height)`` of an image file."""
    from PIL import Image

    with Image.open(path) as image:
        return image.size


def detection_records(paths, predictions: list, size: int, class_names) -> list[dict]:
    """One JSON record per image: its file, size, and each detection with its box scaled from the
    model's ``size x size`` pixels to the original image's pixels (:data:`BOX_FORMAT`)."""
    records = []
    for path, pred in zip(paths, predictions, strict=True):
        width, height = _original_size(path)
        scale = torch.tensor([width / size, height / size, width / size, height / size])
        records.append({
            "image": str(path), "width": width, "height": height,
            "detections": [{"label": int(label), "class": class_names[int(label)], "score": round(float(score), 4),
                            "box": [round(v, 2) for v in (box.float() * scale).tolist()]}
                           for box, score, label in zip(pred["boxes"], pred["scores"], pred["labels"], strict=True)],
        })
    return records


def classification_records(paths, probabilities: torch.Tensor, class_names, top: int = 3) -> list[dict]:
    """One JSON record per image: its file and its ``top`` classes with their probabilities."""
    best = probabilities.topk(min(top, probabilities.shape[1]), dim=1)
    return [{"image": str(path), "top": [{"class": class_names[int(c)], "id": int(c), "probability": round(float(p), 6)}
                                         for p, c in zip(values, ids, strict=True)]}
            for path, values, ids in zip(paths, best.values, best.indices, strict=True)]


def paper_main(argv, name: str, description: str, build, metadata, required, answer, detector: bool,
               recipe=None, module: str | None = None) -> int:
    """The whole ``python -m papers.<name> predict | export | train`` command, shared by every paper
    (and by A5's detectors, ``module="A5_detection.one_stage_detector"``, ``build=None``: ``train`` only).

    ``train`` (given a ``recipe``) trains as the notebook does, on one process or under ``torchrun``
    (:func:`helpers.train_command.run_training`), and saves the model where ``predict`` finds it.

    ``export`` writes the network with its metadata (:func:`export_with_metadata`).  ``predict``
    reads the images at the model's size (:func:`read_good_images`), asks ``answer(network,
    images, meta, score_thresh)`` and writes ``<out>/predictions.json``:

    * detectors (``detector=True``): ``answer`` returns one prediction dict per image (boxes in the
      model's pixels); the JSON gives each image's ``detections`` with boxes in the original
      image's pixels, ``box_format`` saying so, and ``<out>/<image>_<name>.png`` shows them;
    * classifiers: ``answer`` returns ``(N, C)`` probabilities; the JSON gives each image's top 3.

    Args:
        argv: the arguments (``None``: ``sys.argv``).
        name, description: the paper (``"yolov1"``) and the help text.
        build, metadata, required: as for :func:`command_model`.
        recipe: the model's :class:`helpers.train_command.Recipe` (adds ``train``); module: see
            :func:`predict_parser`.
    """
    args = predict_parser(name, description, module, recipe, predict=build is not None).parse_args(argv)
    if args.command == "train":
        from helpers.train_command import run_training

        return run_training(args, recipe)
    network, meta = command_model(args, name, build, metadata, required=required)
    if args.command == "export":
        print(f"wrote {export_with_metadata(network, args.out, meta)}")
        return 0
    out = output_folder(args.out)
    size, names = meta["image_size"], meta["class_names"]
    paths, images = read_good_images(args.images, size, meta.get("in_channels", 3))
    with torch.no_grad():
        answers = answer(network, images, meta, args.score_thresh)
    source = args.export or args.checkpoint or "default checkpoint"
    if detector:
        for stem, image, pred in zip(output_names(paths), images, answers, strict=True):
            save_annotated(image, pred, names, out / f"{stem}_{name}.png")
        payload = {"model": name, "source": source, "model_image_size": size, "score_thresh": args.score_thresh,
                   "box_format": BOX_FORMAT, "images": detection_records(paths, answers, size, names)}
    else:
        payload = {"model": name, "source": source, "predictions": classification_records(paths, answers, names)}
    print(f"wrote {write_json(payload, out / 'predictions.json')}")
    return 0
