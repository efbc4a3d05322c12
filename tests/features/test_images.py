"""Awkward and broken image files: decoded when possible, reported and absent when not, never fatal."""

from __future__ import annotations

import numpy as np
import pytest

from fusionrec.features import FeatureStore, extract_modality, get_extractor
from fusionrec.features.images import ImageDecodeError, load_resized, open_rgb

from .conftest import BROKEN, write_images


def test_open_rgb_modes(awkward_images):
    for kind, path in awkward_images.items():
        if kind in BROKEN:
            with pytest.raises(ImageDecodeError):
                open_rgb(path)
        else:
            im = open_rgb(path)
            assert im.mode == "RGB", kind
            assert load_resized(path, 32).shape == (32, 32, 3)


def test_transparent_pixels_become_white(awkward_images):
    arr = np.asarray(open_rgb(awkward_images["png_alpha"]))
    right = arr[:, arr.shape[1] // 2 + 1 :]  # alpha 0 there
    assert (right == 255).all()
    left = arr[:, : arr.shape[1] // 2 - 1]
    assert not (left == 255).all()


@pytest.mark.parametrize("name", ["cnn", "color"])
def test_broken_files_are_reported_not_fatal(name, awkward_images, tmp_path):
    # a corrupt JPEG used to abort extraction
    kinds = list(awkward_images)
    paths = [awkward_images[k] for k in kinds] + [None, ""]
    ext = get_extractor(name)
    store = FeatureStore(tmp_path / "store")
    values, present, report = extract_modality(ext, paths, store=store)
    for i, kind in enumerate(kinds):
        assert present[i] == (kind not in BROKEN), kind
        if kind not in BROKEN:
            assert np.isfinite(values[i]).all() and np.abs(values[i]).sum() > 0, kind
        else:
            assert not values[i].any()
    assert not present[-2:].any()  # no image at all: absent, but not a failure
    failed = {f.source for f in report.failures}
    assert failed == {awkward_images[k] for k in BROKEN}
    assert report.n_failed == len(BROKEN)
    assert report.n_no_content == 2
    assert report.n_present == len(kinds) - len(BROKEN)
    assert all(f.reason for f in report.failures)
    # the re-run comes from the cache and still names every unusable file
    values2, present2, report2 = extract_modality(get_extractor(name), paths, store=store)
    assert report2.n_extracted == 0
    assert {f.source for f in report2.failures} == failed
    np.testing.assert_array_equal(present2, present)
    np.testing.assert_allclose(values2, values, atol=1e-6)


def test_greyscale_and_cmyk_versions_match_their_source_for_cnn(shared_data, tmp_path):
    # a greyscale / CMYK copy of a poster is closer to it than another poster is
    from PIL import Image

    poster, other = shared_data / "posters" / "1.jpg", shared_data / "posters" / "2.jpg"
    src = Image.open(poster).convert("RGB")
    src.convert("L").save(tmp_path / "grey.jpg", quality=95)
    src.convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    ext = get_extractor("cnn")
    v, p = ext.transform([str(poster), str(tmp_path / "grey.jpg"), str(tmp_path / "cmyk.jpg"), str(other)])
    assert p.all()
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    sims = v[1:] @ v[0]
    assert sims[1] > 0.95, sims  # CMYK decodes back to (almost) the same pixels
    assert sims[0] > sims[2] and sims[1] > sims[2], sims


def test_bovw_fits_and_handles_broken_files(awkward_images, tmp_path):
    paths = write_images(tmp_path / "imgs", 12)
    ext = get_extractor("bovw", vocab_size=32, fit_images=12)
    ext.fit(paths)
    items = paths[:3] + [awkward_images[k] for k in ("truncated", "text_named_jpg", "one_pixel", "cmyk")]
    values, present = ext.transform(items)
    assert values.shape == (7, 32)
    assert present[:3].all() and present[6]
    assert not present[3] and not present[4]
    assert not present[5]  # a 1x1 image has no keypoints: absent, but not a failure
    assert {f.index for f in ext.last_failures} == {3, 4}
    np.testing.assert_allclose(np.linalg.norm(values[present], axis=1), 1.0, rtol=1e-5)
    # the state rebuilds the same extractor
    again = get_extractor("bovw", vocab_size=32, fit_images=12).load_state(ext.state())
    np.testing.assert_array_equal(again.transform(items)[0], values)
    assert again.config() == ext.config()


def test_image_bytes_are_accepted(awkward_images):
    from pathlib import Path

    ext = get_extractor("color")
    data = Path(awkward_images["good"]).read_bytes()
    v_bytes, p_bytes = ext.transform([data])
    v_path, _ = ext.transform([awkward_images["good"]])
    assert p_bytes[0]
    np.testing.assert_array_equal(v_bytes, v_path)
