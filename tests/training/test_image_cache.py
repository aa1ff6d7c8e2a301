"""The decoded-once image cache: build, reuse, corruption detected and rebuilt, progress, every dataset kind."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from learngene.training.config import TrainConfig
from learngene.training.data import load_splits
from learngene.training.image_cache import HEADER_BYTES, cache_side, cached_dataset, decode_square


def _folder(tmp_path, count=6):
    rng = np.random.default_rng(0)
    for index in range(count):
        label = "cat" if index % 2 else "dog"
        (tmp_path / "photos" / label).mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 255, (30 + index, 50, 3), dtype=np.uint8)  # landscape and odd sizes
        Image.fromarray(pixels).save(tmp_path / "photos" / label / f"{index}.png")
    return tmp_path / "photos"


def _build(dataset, tmp_path, calls=None, **kw):
    progress = (lambda done, total: calls.append((done, total))) if calls is not None else (lambda *_: None)
    return cached_dataset(dataset, "set", "train", 16, directory=tmp_path / "cache", progress=progress, **kw)


def test_cache_holds_the_resized_centre_square_of_every_image_with_progress(tmp_path):
    splits = load_splits(TrainConfig(model="vit_tiny_patch16_224", dataset=str(_folder(tmp_path)), img_size=16,
                                     val_fraction=0.34))
    calls = []
    cache = _build(splits.train, tmp_path, calls)
    side = cache_side(16)
    assert side == 18 and len(cache) == len(splits.train)
    assert calls[-1] == (len(splits.train), len(splits.train))
    for index in range(len(cache)):
        image, target = splits.train[index]
        cached, cached_target = cache[index]
        # an independent reference: PIL's own resize of the short side, then the centre square
        w, h = image.size
        ref = image.resize((int(w * side / h), side), Image.BICUBIC)  # torchvision Resize truncates the long side
        assert h < w
        left = int(round((ref.width - side) / 2.0))
        expected = np.asarray(ref.crop((left, 0, left + side, side)))
        assert cached.shape == (3, side, side) and cached_target == target
        assert np.abs(cached.permute(1, 2, 0).numpy().astype(int) - expected.astype(int)).max() <= 1


def test_cache_is_reused_and_a_corrupt_or_partial_one_is_rebuilt(tmp_path):
    splits = load_splits(TrainConfig(model="vit_tiny_patch16_224", dataset="lfw-faces", img_size=16))
    first = []
    cache = _build(splits.val, tmp_path, first)
    path = cache.path
    reference = np.array(cache.images)
    again = []
    assert _build(splits.val, tmp_path, again).path == path and again == []  # reused: no decoding

    # truncated (a partial copy, a full disk)
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    rebuilt = []
    assert np.array_equal(np.array(_build(splits.val, tmp_path, rebuilt).images), reference) and rebuilt

    # one flipped byte in an image (first image is always among the checked ones)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # last image, also always checked
    path.write_bytes(bytes(data))
    rebuilt = []
    assert np.array_equal(np.array(_build(splits.val, tmp_path, rebuilt).images), reference) and rebuilt

    # a header that is not ours
    data = bytearray(path.read_bytes())
    header = json.loads(data[:HEADER_BYTES])
    header["count"] += 1
    data[:HEADER_BYTES] = json.dumps(header).encode().ljust(HEADER_BYTES)
    path.write_bytes(bytes(data))
    rebuilt = []
    _build(splits.val, tmp_path, rebuilt)
    assert rebuilt
    assert not list((tmp_path / "cache").glob(".*.tmp"))  # no temporary files left behind


def test_a_failed_build_leaves_no_file_that_looks_finished(tmp_path):
    class Broken(list):
        def __getitem__(self, index):
            if index == 3:
                raise OSError("unreadable image")
            return Image.new("RGB", (20, 20)), 0

    with pytest.raises(Exception, match="unreadable image|could not write"):
        _build(Broken(range(6)), tmp_path)
    assert not list((tmp_path / "cache").iterdir())


def test_keys_separate_splits_sizes_and_contents(tmp_path):
    splits = load_splits(TrainConfig(model="vit_tiny_patch16_224", dataset="digits", img_size=16))
    directory = tmp_path / "cache"
    a = cached_dataset(splits.val, "digits", "val", 16, directory=directory, progress=lambda *_: None)
    b = cached_dataset(splits.val, "digits", "val", 24, directory=directory, progress=lambda *_: None)
    c = cached_dataset(splits.train, "digits", "train", 16, directory=directory, progress=lambda *_: None)
    assert len({a.path, b.path, c.path}) == 3
    assert b.side == cache_side(24) and len(c) == len(splits.train)


def test_torchvision_datasets_cache_like_any_other(tmp_path):
    from torchvision.datasets import FakeData

    fake = FakeData(size=5, image_size=(3, 24, 40), num_classes=3, random_offset=7)
    cache = _build(fake, tmp_path)
    for index in range(5):
        image, target = fake[index]
        cached, cached_target = cache[index]
        assert cached_target == target
        assert np.array_equal(cached.permute(1, 2, 0).numpy(), decode_square(image, cache.side))
