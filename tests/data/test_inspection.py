"""Image folders: class per folder, the MVTec layout, loose images; bad files skipped with one warning."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from shopfloor.errors import BadOption, BadTarget, DataFileError, ImageUnreadable, ShopfloorWarning
from shopfloor.vision.folders import ImageSet, is_inspection_folder, list_images, read_class_folders, read_inspection_folder
from shopfloor.vision.images import read_image, read_mask


def picture(path, size=(16, 12), mode="L", value=100):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode == "L" else (value, value, value)).save(path)
    return path


def cut_jpeg(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    Image.fromarray(noise).save(path)
    path.write_bytes(path.read_bytes()[:800])
    return path


def read_quietly(reader, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ShopfloorWarning)
        return reader(*args)


@pytest.fixture
def classes(tmp_path):
    root = tmp_path / "defects"
    for name in ("scratch_2.png", "scratch_1.jpg"):
        picture(root / "scratch" / name)
    picture(root / "spot" / "a.bmp", size=(40, 30), mode="RGB")  # colour and another size in the same set
    picture(root / "spot" / "b.TIF")
    return root


def test_class_folders_are_labels_in_sorted_order(classes):
    images = read_quietly(read_class_folders, classes)
    assert isinstance(images, ImageSet) and len(images) == 4
    assert [p.name for p in images.paths] == ["scratch_1.jpg", "scratch_2.png", "a.bmp", "b.TIF"]
    assert images.labels == ["scratch", "scratch", "spot", "spot"]
    assert images.classes == ["scratch", "spot"] and images.masks == [None] * 4
    assert images.root == classes and images.skipped == []
    # mixed grayscale and colour, mixed sizes: the reader converts them all
    assert {read_image(path, 3, size=8).shape for path in images.paths} == {(3, 8, 8)}


def test_subset_by_position_or_mask(classes):
    images = read_quietly(read_class_folders, classes)
    picked = images.subset([3, 0])
    assert [p.name for p in picked.paths] == ["b.TIF", "scratch_1.jpg"] and picked.labels == ["spot", "scratch"]
    assert picked.root == classes and len(picked.masks) == 2
    assert images.subset(np.array([True, False, False, True])).labels == ["scratch", "spot"]
    assert len(images.subset(np.array([], dtype=int))) == 0


def test_bad_files_are_skipped_with_one_warning(classes):
    (classes / "spot" / "notes.txt").write_text("shift 2: lens cleaned")
    (classes / "spot" / "fake.png").write_text("not a picture")
    cut_jpeg(classes / "scratch" / "cut.jpg")
    (classes / "scratch" / ".DS_Store").write_bytes(b"\x00\x01")  # hidden: ignored silently
    (classes / "scratch" / "Thumbs.db").write_bytes(b"\x00\x01")  # Windows share litter: ignored silently
    (classes / ".cache").mkdir()  # a hidden folder is no class
    picture(classes / ".cache" / "x.png")
    with pytest.warns(ShopfloorWarning) as caught:
        images = read_class_folders(classes)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert message.startswith("skipped 3 files") and "scratch/cut.jpg (truncated" in message
    assert "spot/notes.txt (a .txt file, not an image)" in message and "spot/fake.png" in message
    assert len(images) == 4 and images.classes == ["scratch", "spot"]
    assert sorted(p.name for p, _ in images.skipped) == ["cut.jpg", "fake.png", "notes.txt"]


def test_the_warning_lists_ten_names_and_counts_the_rest(classes):
    for i in range(13):
        (classes / "spot" / f"log{i:02d}.txt").write_text("x")
    with pytest.warns(ShopfloorWarning, match=r"skipped 13 files .*log09\.txt.* and 3 more$") as caught:
        read_class_folders(classes)
    assert "log10.txt" not in str(caught[0].message)


def test_an_empty_class_folder_is_named(classes):
    (classes / "crack").mkdir()
    with pytest.raises(DataFileError, match="class folder 'crack' in .* holds no images; add images or remove it"):
        read_class_folders(classes)


def test_a_class_of_unreadable_files_counts_as_empty(classes):
    (classes / "crack").mkdir()
    (classes / "crack" / "broken.png").write_text("zero bytes of picture")
    with pytest.raises(DataFileError, match=r"'crack' .* no images \(its 1 files are not readable images, e\.g\. "
                                            r"broken\.png.*add images or remove it"):
        read_class_folders(classes)


def test_images_must_sit_directly_in_the_class_folder(classes):
    picture(classes / "crack" / "line1" / "a.png")
    with pytest.raises(DataFileError, match=r"'crack' .* no images \(only subfolders: images must sit directly inside it\)"):
        read_class_folders(classes)


def test_one_class_is_not_enough(tmp_path):
    picture(tmp_path / "good" / "a.png")
    with pytest.raises(BadTarget, match="only one class folder, 'good'; .* at least two classes .*anomaly model"):
        read_class_folders(tmp_path)


def test_missing_root_file_root_and_no_class_folders(tmp_path):
    with pytest.raises(DataFileError, match="no such folder"):
        read_class_folders(tmp_path / "absent")
    with pytest.raises(DataFileError, match="is a file, expected a folder with one folder per defect class"):
        read_class_folders(picture(tmp_path / "one.png"))
    with pytest.raises(DataFileError, match=r"holds no class folders \(it holds 1 images but no folders\)"):
        read_class_folders(tmp_path)


def test_loose_images_beside_class_folders_are_ignored_with_a_warning(classes):
    picture(classes / "stray.png")
    with pytest.warns(ShopfloorWarning, match=r"ignored 1 images directly in .*stray\.png.*class folder"):
        assert len(read_class_folders(classes)) == 4


# --- the MVTec layout -----------------------------------------------------------------------------------

@pytest.fixture
def inspection(tmp_path):
    root = tmp_path / "tile"
    for i in range(3):
        picture(root / "train" / "good" / f"{i:03d}.png")
    picture(root / "test" / "good" / "000.png")
    picture(root / "test" / "crack" / "000.png")
    picture(root / "test" / "crack" / "001.jpg")
    picture(root / "test" / "spot" / "000.png")
    picture(root / "ground_truth" / "crack" / "000_mask.png", value=0)
    picture(root / "ground_truth" / "crack" / "001.png", value=255)  # the other accepted name
    picture(root / "ground_truth" / "spot" / "000_mask.png", value=255)
    return root


def test_train_is_good_images_only(inspection):
    assert is_inspection_folder(inspection) and not is_inspection_folder(inspection / "train")
    train = read_quietly(read_inspection_folder, inspection, "train")
    assert [p.name for p in train.paths] == ["000.png", "001.png", "002.png"]
    assert train.labels == ["good"] * 3 and train.masks == [None] * 3 and train.root == inspection


def test_test_has_labels_from_folders_and_masks_from_ground_truth(inspection):
    test = read_quietly(read_inspection_folder, inspection, "test")
    assert test.labels == ["good", "crack", "crack", "spot"]  # good first, then defects in name order
    assert test.classes == ["crack", "good", "spot"]
    masks = [None if m is None else m.relative_to(inspection).as_posix() for m in test.masks]
    assert masks == [None, "ground_truth/crack/000_mask.png", "ground_truth/crack/001.png",
                     "ground_truth/spot/000_mask.png"]
    assert read_mask(test.masks[3], 16, 12).all()


def test_defect_images_without_a_mask_are_kept_and_named(inspection):
    (inspection / "ground_truth" / "spot" / "000_mask.png").unlink()
    with pytest.warns(ShopfloorWarning, match=r"1 defect images .* no mask .*spot/000\.png"):
        test = read_inspection_folder(inspection, "test")
    assert test.masks[3] is None and len(test) == 4
    for mask in (inspection / "ground_truth").rglob("*.png"):  # no ground truth at all is fine too
        mask.unlink()
    for folder in (inspection / "ground_truth").iterdir():
        folder.rmdir()
    assert read_quietly(read_inspection_folder, inspection, "test").masks[1:] == [None] * 3


def test_masks_named_the_common_ways_are_found(inspection):
    """Only <image>_mask.png and <image>.png were looked for: a set with <image>_label.bmp masks scored no pixels
    without a word (issue 13)."""
    truth = inspection / "ground_truth"
    for mask in truth.rglob("*.png"):
        mask.unlink()
    picture(inspection / "test" / "crack" / "002.png")
    picture(truth / "crack" / "000_label.bmp", value=255)
    picture(truth / "crack" / "001_GT.tif", value=255)  # any image suffix, any case
    picture(truth / "crack" / "002.jpg", value=255)
    picture(truth / "spot" / "000_mask.bmp", value=0)
    picture(truth / "spot" / "000_mask.png", value=255)  # the PNG wins over another format of the same name
    test = read_quietly(read_inspection_folder, inspection, "test")
    masks = [None if m is None else m.relative_to(truth).as_posix() for m in test.masks]
    assert masks == [None, "crack/000_label.bmp", "crack/001_GT.tif", "crack/002.jpg", "spot/000_mask.png"]


def test_defect_images_without_a_mask_are_all_named_with_the_files_that_match_none(inspection):
    truth = inspection / "ground_truth"
    (truth / "crack" / "000_mask.png").rename(truth / "crack" / "000-annotation.png")
    (truth / "crack" / "001.png").unlink()
    with pytest.warns(ShopfloorWarning) as caught:
        test = read_inspection_folder(inspection, "test")
    message = str(caught[0].message)
    assert "2 defect images" in message and "crack/000.png, crack/001.jpg" in message
    assert "1 files there match no image (e.g. ground_truth/crack/000-annotation.png)" in message
    assert "<image>_label" in message and test.masks[1:3] == [None, None]


def test_bad_files_in_an_inspection_folder_are_skipped_with_a_warning(inspection):
    cut_jpeg(inspection / "train" / "good" / "cut.jpg")
    (inspection / "test" / "crack" / "readme.md").write_text("x")
    with pytest.warns(ShopfloorWarning, match=r"skipped 1 files .*train/good/cut\.jpg \(truncated"):
        assert len(read_inspection_folder(inspection, "train")) == 3
    with pytest.warns(ShopfloorWarning, match=r"skipped 1 files .*test/crack/readme\.md"):
        assert len(read_inspection_folder(inspection, "test")) == 4


def test_defect_folders_in_train_are_ignored_with_a_warning(inspection):
    picture(inspection / "train" / "crack" / "a.png")
    with pytest.warns(ShopfloorWarning, match=r"ignored train/crack .*good images only"):
        assert read_inspection_folder(inspection, "train").labels == ["good"] * 3


def test_no_good_training_images_says_where_to_put_them(tmp_path):
    picture(tmp_path / "train" / "bad" / "a.png")
    with pytest.raises(DataFileError, match=r"no train/good folder; an anomaly model learns from good images only: "
                                            r"put them in .*train/good"):
        read_inspection_folder(tmp_path, "train")
    (tmp_path / "train" / "good").mkdir()
    with pytest.raises(DataFileError, match=r"train/good holds no images; an anomaly model learns from good images"):
        read_inspection_folder(tmp_path, "train")


def test_test_part_needs_a_test_folder_with_images(inspection):
    with pytest.raises(BadOption, match="part must be 'train' or 'test'"):
        read_inspection_folder(inspection, "validation")
    for path in sorted((inspection / "test").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (inspection / "test" / "good").mkdir()
    with pytest.raises(DataFileError, match="test holds no images"):
        read_inspection_folder(inspection, "test")
    (inspection / "test" / "good").rmdir()
    (inspection / "test").rmdir()
    with pytest.raises(DataFileError, match="has no test folder; put test images in .*test/good"):
        read_inspection_folder(inspection, "test")


def test_an_inspection_folder_is_not_class_folders(inspection):
    with pytest.raises(DataFileError, match="laid out for anomaly detection"):
        read_class_folders(inspection)


# --- loose images for prediction -----------------------------------------------------------------------

def test_list_images_of_a_file_and_of_a_folder_tree(tmp_path):
    one = picture(tmp_path / "line" / "b.png")
    picture(tmp_path / "line" / "a.jpg")
    picture(tmp_path / "line" / "station2" / "c.png")
    picture(tmp_path / "line" / ".previews" / "d.png")
    (tmp_path / "line" / "results.csv").write_text("a\n1\n")
    single = read_quietly(list_images, one)
    assert single.paths == [one] and single.labels == [""] and single.masks == [None]
    with pytest.warns(ShopfloorWarning, match=r"skipped 1 files .*results\.csv"):
        tree = list_images(tmp_path / "line")
    assert [p.relative_to(tmp_path / "line").as_posix() for p in tree.paths] == ["a.jpg", "b.png", "station2/c.png"]
    assert tree.labels == [""] * 3 and tree.root == tmp_path / "line"


def test_list_images_errors(tmp_path):
    with pytest.raises(DataFileError, match="no such file or folder"):
        list_images(tmp_path / "absent")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ImageUnreadable, match=r"notes\.txt cannot be used as an image: a \.txt file, not an image"):
        list_images(tmp_path / "notes.txt")
    with pytest.raises(DataFileError, match=r"holds no readable images .*skipped 1 other files"):
        list_images(tmp_path)


# --- the real data sets, where ../shared/data has them ----------------------------------------------------

def test_neu_steel_surfaces_are_six_classes_of_300(shared_data):
    root = shared_data / "neu-det" / "images"
    if not root.is_dir():
        pytest.skip(f"NEU surface defects not found at {root}")
    images = read_quietly(read_class_folders, root)
    assert images.classes == ["crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches"]
    assert len(images) == 1800 and all(images.labels.count(c) == 300 for c in images.classes)
    assert read_image(images.paths[0], 1, size=64).shape == (1, 64, 64)


def test_magnetic_tile_is_an_inspection_folder_with_a_mask_per_defect(shared_data):
    root = shared_data / "magnetic-tile"
    if not root.is_dir():
        pytest.skip(f"magnetic tile set not found at {root}")
    assert is_inspection_folder(root)
    train = read_quietly(read_inspection_folder, root, "train")
    test = read_quietly(read_inspection_folder, root, "test")
    assert len(train) == 761 and set(train.labels) == {"good"}
    assert test.labels.count("good") == 191
    assert test.classes == ["blowhole", "break", "crack", "fray", "good", "uneven"]
    defects = [i for i, label in enumerate(test.labels) if label != "good"]
    assert len(defects) == 115 + 85 + 57 + 32 + 103
    assert all(test.masks[i] is not None for i in defects)
    for i in defects[::40]:  # masks line up with their images
        width, height = Image.open(test.paths[i]).size
        assert read_mask(test.masks[i], width, height).shape == (height, width)
