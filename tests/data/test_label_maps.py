"""ADE20K, COCO-Stuff and Mapillary readers: class names, mask areas, unlabeled pixels."""

from __future__ import annotations

import numpy as np
import pytest

from partonomy.data.sample import IGNORE_INDEX
from partonomy.data.sources import ade20k, cocostuff, mapillary
from partonomy.data.sources.base import Stage1Options
from partonomy.data.sources.label_maps import packaged_class_names
from partonomy.errors import FormatError


def _stats(sample):
    return {
        k: (int((m == 1).sum()), int((m == IGNORE_INDEX).sum())) for k, m in sample.masks.items()
    }


def test_packaged_class_lists():
    ade = packaged_class_names("ade20k")
    assert len(ade) == 150 and ade[0] == "wall" and ade[12] == "person" and ade[149] == "flag"
    cs = packaged_class_names("cocostuff")
    # 91 thing ids (with the 11 unused ones) then 91 stuff ids; PNG value = COCO id - 1
    assert len(cs) == 182 and cs[0] == "person" and cs[11] == "street sign"
    assert cs[90] == "hair brush" and cs[91] == "banner" and cs[181] == "wood"
    assert len(set(ade)) == 150 and len(set(cs)) == 182


def test_ade20k_reader(tmp_path, real):
    real.make_ade20k(tmp_path)
    reader = ade20k.open_reader(tmp_path, Stage1Options(num_classes_per_sample=5))
    assert len(reader) == 2
    sample = reader.sample(0, np.random.default_rng(0))
    # value 1 -> wall (20 px), 4 -> floor (15 px), 13 -> person (9 px); 0 (36 px) is unlabeled
    assert _stats(sample) == {"wall": (20, 36), "floor": (15, 36), "person": (9, 36)}
    assert sample.source == "ade20k" and sample.image.name == "ADE_train_00000001.jpg"
    assert all(m.dtype == np.uint8 and m.shape == (8, 10) for m in sample.masks.values())
    [(_, answer)] = sample.conversation
    assert all(name in answer for name in sample.masks)
    # the mask order is the order the spans appear in the answer
    assert list(sample.masks) == sorted(sample.masks, key=answer.index)
    flag = reader.sample(1, np.random.default_rng(0))
    assert _stats(flag) == {"flag": (1, 79)}  # value 150 = the last class


def test_ade20k_num_classes_and_val_split(tmp_path, real):
    real.make_ade20k(tmp_path)
    reader = ade20k.open_reader(tmp_path, Stage1Options(num_classes_per_sample=2, split="val"))
    assert len(reader) == 1
    names = [list(reader.sample(0, np.random.default_rng(s)).masks) for s in range(20)]
    assert all(len(n) == 2 for n in names)
    assert {x for n in names for x in n} == {"wall", "floor", "person"}


def test_ade20k_accepts_the_raw_challenge_folder(tmp_path, real):
    real.make_ade20k(tmp_path / "raw")
    (tmp_path / "ade20k").mkdir()
    (tmp_path / "raw" / "ade20k").rename(tmp_path / "ade20k" / "ADEChallengeData2016")
    assert len(ade20k.open_reader(tmp_path, Stage1Options())) == 2


def test_cocostuff_reader(tmp_path, real, cocostuff_names):
    real.make_cocostuff(tmp_path, cocostuff_names)
    reader = cocostuff.open_reader(tmp_path, Stage1Options())
    sample = reader.sample(0, np.random.default_rng(1))
    # wall-other (16 px) is a known class never asked about: 0 in the masks, not ignored;
    # 255 (12 px) is unlabeled: ignored
    assert _stats(sample) == {"person": (12, 12), "grass": (8, 12)}
    assert cocostuff_names.index("wall-other") not in cocostuff.askable_classes(cocostuff_names)


def test_cocostuff_raw_stuffthingmaps_folder(tmp_path, real, cocostuff_names):
    real.make_cocostuff(tmp_path, cocostuff_names)
    raw = tmp_path / "cocostuff" / "stuffthingmaps_trainval2017"
    raw.mkdir()
    (tmp_path / "cocostuff" / "train2017").rename(raw / "train2017")
    assert len(cocostuff.open_reader(tmp_path, Stage1Options())) == 1


def test_mapillary_reader_palette_png_and_unlabeled(tmp_path, real):
    real.make_mapillary(tmp_path)
    reader = mapillary.open_reader(tmp_path, Stage1Options())
    sample = reader.sample(0, np.random.default_rng(0))
    # readable names lower-cased; "Unlabeled" (index 3, 10 px) is ignored, never a class
    assert _stats(sample) == {"road": (32, 10), "car": (6, 10)}


def test_label_map_errors_name_the_file(tmp_path, real):
    real.make_ade20k(tmp_path)
    (tmp_path / "ade20k" / "images" / "training" / "ADE_train_00000002.jpg").unlink()
    with pytest.raises(FormatError, match="1 label map\\(s\\) have no image"):
        ade20k.open_reader(tmp_path, Stage1Options())
    real.make_ade20k(tmp_path)
    label = tmp_path / "ade20k" / "annotations" / "training" / "ADE_train_00000001.png"
    from PIL import Image

    Image.new("RGB", (10, 8)).save(label)
    reader = ade20k.open_reader(tmp_path, Stage1Options())
    with pytest.raises(FormatError, match="single-channel") as info:
        reader.sample(0, np.random.default_rng(0))
    assert str(label) in str(info.value)
    Image.new("L", (5, 5)).save(label)
    with pytest.raises(FormatError, match="5x5 but its image is 8x10"):
        reader.sample(0, np.random.default_rng(0))
