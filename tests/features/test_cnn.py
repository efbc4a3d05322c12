"""CNN backbone: ONNX and eager torch agree; any architecture runs from a local weights file."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from fusionrec.errors import ConfigError
from fusionrec.features import extractor_from_config, get_extractor

from .conftest import write_images

TINY_NET = textwrap.dedent(
    """
    import torch


    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, stride=2)
            self.act = torch.nn.ReLU()
            self.fc = torch.nn.Linear(8, 5)

        def forward(self, x):
            return self.fc(self.act(self.conv(x)).mean(dim=(2, 3)))


    def build():
        return Tiny()
    """
)


def test_onnx_matches_torch(shared_data, tmp_path):
    posters = [str(shared_data / "posters" / f"{i}.jpg") for i in (1, 2, 3, 5)]
    onnx = get_extractor("cnn", runtime="onnx")
    eager = get_extractor("cnn", runtime="torch")
    v_onnx, p_onnx = onnx.transform(posters)
    v_torch, p_torch = eager.transform(posters)
    assert onnx.backend == "onnx" and eager.backend == "torch"
    assert v_onnx.shape == (4, 1280) and p_onnx.all() and p_torch.all()
    np.testing.assert_allclose(v_onnx, v_torch, atol=1e-4, rtol=1e-4)
    assert onnx.onnx_path().exists()
    # both runtimes describe the same output, so they share cached rows
    assert onnx.config() == eager.config()


def test_lite0_config_identifies_weights():
    cfg = get_extractor("cnn").config()
    assert cfg["dims"] == 1280 and cfg["model"] == "efficientnet-lite0"
    assert len(cfg["weights_sha256"]) == 64
    assert cfg["preprocess"]["mean"] == [127.0] * 3 and cfg["preprocess"]["std"] == [128.0] * 3


def test_custom_backbone_with_local_weights(tmp_path, monkeypatch):
    import torch

    (tmp_path / "tinynet_mod.py").write_text(TINY_NET)
    monkeypatch.syspath_prepend(str(tmp_path))
    import tinynet_mod

    torch.manual_seed(0)
    net = tinynet_mod.build()
    weights = tmp_path / "tiny.pth"
    torch.save(net.state_dict(), weights)
    images = write_images(tmp_path / "imgs", 3)

    ext = get_extractor("cnn", arch="tinynet_mod:build", weights=str(weights), image_size=64, runtime="torch")
    values, present = ext.transform(images)
    assert values.shape == (3, 8) and present.all()  # the head (fc) is dropped: 8 pooled channels
    # same numbers as running the saved network by hand (head removed, ImageNet normalisation)
    from fusionrec.features.images import load_resized

    x = np.stack([load_resized(p, 64) for p in images]).astype(np.float32)
    mean = np.array([123.675, 116.28, 103.53], np.float32)
    std = np.array([58.395, 57.12, 57.375], np.float32)
    x = torch.from_numpy(((x - mean) / std).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        expected = net.act(net.conv(x)).mean(dim=(2, 3)).numpy()
    np.testing.assert_allclose(values, expected, atol=1e-5)

    # ONNX export of the custom network agrees too, and the config rebuilds the extractor
    onnx = get_extractor("cnn", arch="tinynet_mod:build", weights=str(weights), image_size=64, runtime="onnx")
    np.testing.assert_allclose(onnx.transform(images)[0], values, atol=1e-4)
    cfg = ext.config()
    assert cfg["dims"] == 8 and cfg["model"] == "tinynet_mod:build"
    with pytest.raises(ConfigError, match="never imported from a file"):
        extractor_from_config(cfg)  # a config read back from a file may not name code
    rebuilt = extractor_from_config(cfg, trusted=True)  # this one was built in this process
    np.testing.assert_allclose(rebuilt.transform(images)[0], values, atol=1e-4)

    # different weights → different identity (cache key) and different features
    torch.manual_seed(1)
    torch.save(tinynet_mod.build().state_dict(), tmp_path / "other.pth")
    other = get_extractor("cnn", arch="tinynet_mod:build", weights=str(tmp_path / "other.pth"), image_size=64)
    assert other.config()["weights_sha256"] != cfg["weights_sha256"]
    assert not np.allclose(other.transform(images)[0], values)


def test_backbone_errors_say_what_to_do(tmp_path, monkeypatch):
    import torch

    (tmp_path / "tinynet_err.py").write_text(TINY_NET)
    monkeypatch.syspath_prepend(str(tmp_path))
    torch.save({"something.else": torch.zeros(3)}, tmp_path / "wrong.pth")
    with pytest.raises(ConfigError, match="does not fit"):
        get_extractor(
            "cnn", arch="tinynet_err:build", weights=str(tmp_path / "wrong.pth"), runtime="torch"
        ).transform([])
    with pytest.raises(ConfigError, match="unknown CNN architecture"):
        get_extractor("cnn", arch="no_such_net_xyz", runtime="torch").config()
    with pytest.raises(ConfigError, match="cannot import"):
        get_extractor("cnn", arch="no_such_module_xyz:build", runtime="torch").config()
    with pytest.raises(ConfigError, match="no parameter"):
        get_extractor("cnn", bogus=1)
