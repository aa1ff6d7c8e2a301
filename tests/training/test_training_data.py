"""Datasets (offline built-ins, image folders), class-count checks, the resumable sampler, schedule and groups."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from learngene.errors import LearngeneError
from learngene.training.config import TrainConfig
from learngene.training.data import ResumableSampler, build_transforms, load_splits, stratified_split
from learngene.training.optim import WarmupCosine, param_groups


def _cfg(**kw):
    return TrainConfig(model="vit_tiny_patch16_224", img_size=32, **kw)


def test_digits_are_rgb_at_model_resolution_with_a_fixed_split():
    splits = load_splits(_cfg(dataset="digits"))
    assert splits.num_classes == 10 and splits.builtin
    assert len(splits.train) + len(splits.val) == 1797
    image, target = splits.val[0]
    assert image.size == (32, 32) and image.mode == "RGB" and 0 <= target < 10
    again = load_splits(_cfg(dataset="digits", seed=123))  # the run seed never moves the split
    assert splits.val.indices == again.val.indices


def test_lfw_faces_and_transforms():
    splits = load_splits(_cfg(dataset="lfw-faces"))
    assert splits.classes == ["face", "non-face"] and len(splits.train) + len(splits.val) == 200
    train_tf, eval_tf = build_transforms(_cfg(dataset="lfw-faces"), (0.5,) * 3, (0.5,) * 3, builtin=True)
    assert train_tf(splits.train[0][0]).shape == (3, 32, 32)
    assert eval_tf(splits.val[0][0]).shape == (3, 32, 32)


def test_class_count_mismatch_names_the_classes():
    with pytest.raises(LearngeneError, match=r"has 2 classes \(face, non-face\) but --num-classes is 5"):
        load_splits(_cfg(dataset="lfw-faces", num_classes=5))


def _write_images(folder, classes, per_class):
    for name in classes:
        (folder / name).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (12, 12), (i * 20, 0, 0)).save(folder / name / f"{i}.png")


def test_image_folder_layouts(tmp_path):
    _write_images(tmp_path / "split" / "train", ["cat", "dog"], 4)
    _write_images(tmp_path / "split" / "val", ["cat", "dog"], 2)
    splits = load_splits(_cfg(dataset=str(tmp_path / "split")))
    assert splits.classes == ["cat", "dog"] and (len(splits.train), len(splits.val)) == (8, 4)

    _write_images(tmp_path / "single", ["a", "b", "c"], 10)
    splits = load_splits(_cfg(dataset=str(tmp_path / "single"), val_fraction=0.2))
    assert (len(splits.train), len(splits.val)) == (24, 6)

    _write_images(tmp_path / "mismatch" / "train", ["a", "b"], 2)
    _write_images(tmp_path / "mismatch" / "val", ["a", "c"], 2)
    with pytest.raises(LearngeneError, match="different classes"):
        load_splits(_cfg(dataset=str(tmp_path / "mismatch")))


def test_empty_folder_and_unknown_dataset(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LearngeneError, match="no usable images"):
        load_splits(_cfg(dataset=str(tmp_path / "empty")))
    with pytest.raises(LearngeneError, match="unknown dataset"):
        load_splits(_cfg(dataset="no-such-set"))


def test_missing_torchvision_dataset_without_download(tmp_path):
    with pytest.raises(LearngeneError, match="could not load dataset cifar10.*downloads are off"):
        load_splits(_cfg(dataset="cifar10", data_root=str(tmp_path), download=False))


def test_stratified_split_keeps_every_class():
    train, val = stratified_split([0] * 10 + [1] * 5, 0.2)
    assert len(val) == 3 and set(train).isdisjoint(val) and len(train) + len(val) == 15


def test_sampler_resumes_mid_epoch_and_shards():
    sampler = ResumableSampler(10, seed=3)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.set_epoch(2, start=4)
    assert list(sampler) == full[4:]
    sampler.set_epoch(3)
    assert list(sampler) != full and sorted(sampler) == list(range(10))
    shards = [list(ResumableSampler(10, rank=r, world_size=3, seed=3)) for r in range(3)]
    assert all(len(s) == 4 for s in shards)  # padded to equal length
    evals = [list(ResumableSampler(10, rank=r, world_size=3, shuffle=False, pad=False)) for r in range(3)]
    assert sorted(sum(evals, [])) == list(range(10))  # each image counted once


def test_warmup_cosine_schedule_and_resume():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = WarmupCosine(opt, peak_lr=1.0, total_steps=100, warmup_steps=10, warmup_lr=0.0, min_lr=0.0)
    lrs = []
    for _ in range(100):
        lrs.append(sched.get_last_lr())
        sched.step()
    assert lrs[0] == 0.0 and lrs[5] == pytest.approx(0.5) and lrs[10] == pytest.approx(1.0)
    assert lrs[55] == pytest.approx(0.5) and sched.get_last_lr() == pytest.approx(0.0)
    other = WarmupCosine(opt, peak_lr=1.0, total_steps=100, warmup_steps=10, warmup_lr=0.0, min_lr=0.0)
    other.load_state_dict({"step_count": 55})
    assert other.get_last_lr() == pytest.approx(lrs[55])


def test_no_weight_decay_on_norms_biases_and_tokens():
    import timm

    model = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=1, num_classes=3)
    decay, no_decay = param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    skipped = {names[id(p)] for p in no_decay["params"]}
    assert {"cls_token", "pos_embed", "norm.weight", "head.bias", "blocks.0.norm1.weight"} <= skipped
    assert {names[id(p)] for p in decay["params"]} == {"patch_embed.proj.weight", "blocks.0.attn.qkv.weight",
                                                      "blocks.0.attn.proj.weight", "blocks.0.mlp.fc1.weight",
                                                      "blocks.0.mlp.fc2.weight", "head.weight"}
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.05, 0.0)


def test_randaugment_posterize_to_zero_bits_does_not_crash():
    """Pillow 13 rejects 0 posterize bits, which the paper's inc1 policy produces at magnitude 10."""
    from timm.data.auto_augment import RandAugment

    train_tf, _ = build_transforms(_cfg(dataset="digits", randaugment="rand-m10-inc1"), (0.5,) * 3, (0.5,) * 3)
    augment = next(t for t in train_tf.transforms if isinstance(t, RandAugment))
    posterize = next(op for op in augment.ops if op.name == "PosterizeIncreasing")
    posterize.prob = 1.0
    out = posterize(Image.new("RGB", (8, 8), (200, 100, 50)))
    assert out.getextrema() == ((0, 0), (0, 0), (0, 0))


def test_device_preprocess_matches_the_cpu_transforms():
    """The GPU path (uint8 loader + on-device normalisation) must feed the model exactly what the CPU path does."""
    from learngene.training.data import DevicePreprocess

    cfg = _cfg(dataset="lfw-faces")
    splits = load_splits(cfg)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    _, eval_tf = build_transforms(cfg, mean, std, builtin=True)
    train_u8, eval_u8 = build_transforms(cfg, mean, std, builtin=True, uint8_output=True)
    image = splits.val[0][0]
    raw = eval_u8(image)
    assert raw.dtype == torch.uint8 and raw.shape == (3, 32, 32) and train_u8(image).dtype == torch.uint8
    pre = DevicePreprocess(mean, std, torch.device("cpu"), erase_prob=1.0)
    assert torch.allclose(pre(raw[None], train=False)[0], eval_tf(image), atol=1e-5)
    erased = pre(raw[None].repeat(4, 1, 1, 1), train=True)
    assert erased.shape == (4, 3, 32, 32) and not torch.allclose(erased[0], eval_tf(image))


def test_pipelines_give_the_same_batch_shapes_and_the_cached_one_builds_its_cache_once(tmp_path, monkeypatch):
    from learngene.training.data import build_loaders, resolve_data_pipeline

    monkeypatch.setenv("LEARNGENE_CACHE_DIR", str(tmp_path / "cache"))
    cfg = _cfg(dataset="digits", batch_size=8, workers=0, device="cpu")
    splits = load_splits(cfg)
    mean, std = (0.5,) * 3, (0.5,) * 3
    cpu = torch.device("cpu")
    assert resolve_data_pipeline("auto", "cpu", 10, 32) == "pil"
    with pytest.raises(LearngeneError, match="data pipeline must be one of"):
        resolve_data_pipeline("fast", "cpu", 10, 32)
    pil = build_loaders(cfg, splits, mean, std, cpu, data_pipeline="pil")
    cached = build_loaders(cfg, splits, mean, std, cpu, data_pipeline="cached")
    assert pil.pipeline == "pil" and cached.pipeline == "cached" and pil.train_size == cached.train_size
    files = sorted((tmp_path / "cache").glob("*.u8"))
    assert len(files) == 2  # train and val
    stamp = [f.stat().st_mtime_ns for f in files]
    for train in (True, False):
        loader = pil.train_loader if train else pil.val_loader
        pil_images, pil_targets = next(iter(loader))
        raw, targets = next(iter(cached.train_loader if train else cached.val_loader))
        assert raw.dtype == torch.uint8 and raw.shape[-1] == 36  # floor(32 / 0.875)
        images = cached.preprocess(raw, train)
        assert images.shape == pil_images.shape == (8, 3, 32, 32) and images.dtype == torch.float32
        assert targets.shape == pil_targets.shape
    if not train:  # evaluation order and content agree: the built-in set is evaluated whole in both
        assert torch.equal(targets, pil_targets)
        assert (images - pil_images).abs().mean() < 0.05
    again = build_loaders(cfg, splits, mean, std, cpu, data_pipeline="cached")
    assert again.train_size == cached.train_size
    assert [f.stat().st_mtime_ns for f in files] == stamp  # reused, not rebuilt
