"""Folders of inspection images: one folder per defect class, the MVTec anomaly layout, or loose images.

- class folders, for defect classification: ``root/<class>/*.png`` (images directly inside);
- the MVTec layout, for anomaly detection: ``root/train/good``, ``root/test/good``,
  ``root/test/<defect>`` and optional masks ``root/ground_truth/<defect>/<name>_mask.png`` (or named
  ``<name>_label``, ``<name>_gt`` or ``<name>``, in any image format: `MASK_ENDINGS`);
- any image or folder of images, for prediction (`list_images`).

Only file names and headers are read here, never pixels, so listing thousands of images takes
seconds. Files that are not images or are damaged (a JPEG cut short by a copy) are skipped and
named in one warning; grayscale and colour, and different sizes, may be mixed: `read_image`
converts and resizes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shopfloor.errors import BadOption, BadTarget, DataFileError, ImageUnreadable, warn
from shopfloor.vision.images import IMAGE_SUFFIXES, image_problem

GOOD = "good"
PARTS = ("train", "test")
_SYSTEM_FILES = {"thumbs.db", "desktop.ini"}  # written by Windows file shares; never worth a warning
_LISTED = 10
# how data sets name a mask after its image, most specific first: MVTec, labelling tools, and plain copies
MASK_ENDINGS = ("_mask", "_label", "_gt", "")


@dataclass
class ImageSet:
    paths: list[Path]
    labels: list[str]
    masks: list[Path | None]
    root: Path
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (file, why), for reports

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels))

    def subset(self, indexes) -> ImageSet:
        """The images at `indexes` (positions, or a boolean mask over the set), in that order."""
        picked = np.asarray(indexes)
        if picked.dtype == bool:
            picked = np.flatnonzero(picked)
        picked = [int(i) for i in picked.ravel()]
        return ImageSet([self.paths[i] for i in picked], [self.labels[i] for i in picked],
                        [self.masks[i] for i in picked], self.root, list(self.skipped))


def read_class_folders(root) -> ImageSet:
    """Images for defect classification, one folder per class: root/<class>/<image>."""
    root = _folder(root, "a folder with one folder per defect class")
    if is_inspection_folder(root):
        raise DataFileError(f"{root} is laid out for anomaly detection (train/good, test/<defect>); for defect "
                            "classification point at a folder with one folder per class, e.g. scratch/ and spot/")
    folders = [f for f in _entries(root) if f.is_dir()]
    loose = [f for f in _entries(root) if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
    if not folders:
        found = f" (it holds {len(loose)} images but no folders)" if loose else ""
        raise DataFileError(f"{root} holds no class folders{found}; put the images of each defect class in a "
                            f"folder of its own, e.g. {root / 'scratch'}")
    paths, labels, skipped = [], [], []
    for folder in folders:
        images, bad = _scan([f for f in _entries(folder) if f.is_file()])
        if not images:
            raise DataFileError(f"class folder '{folder.name}' in {root} holds no images{_why_empty(folder, bad)}; "
                                "add images or remove it")
        paths += images
        labels += [folder.name] * len(images)
        skipped += bad
    if len(folders) == 1:
        raise BadTarget(f"{root} holds only one class folder, '{folders[0].name}'; a defect classifier needs at least "
                        "two classes (for good images only, train an anomaly model instead)")
    if loose:
        warn(f"ignored {len(loose)} images directly in {root} (e.g. {loose[0].name}); put them in a class folder")
    _warn_skipped(skipped, root)
    return ImageSet(paths, labels, [None] * len(paths), root, skipped)


def read_inspection_folder(root, part: str) -> ImageSet:
    """One part ("train" or "test") of an MVTec-style folder; train is good images only, test has masks."""
    if part not in PARTS:
        raise BadOption(f"part must be 'train' or 'test', got {part!r}")
    root = _folder(root, "an inspection folder with train/good and test/<defect> inside")
    return _read_train(root) if part == "train" else _read_test(root)


def is_inspection_folder(root) -> bool:
    """True for the MVTec layout, recognised by its train/good folder."""
    return (Path(root) / "train" / GOOD).is_dir()


def list_images(path) -> ImageSet:
    """Images to predict on: one image file, or every image in a folder and its subfolders (sorted), unlabelled.
    A folder in the MVTec layout gives its test images: its masks and training images are not parts to judge."""
    path = Path(path)
    if not path.exists():
        raise DataFileError(f"{path}: no such file or folder")
    if path.is_dir() and is_inspection_folder(path) and (path / "test").is_dir():
        return read_inspection_folder(path, "test")
    if path.is_file():
        problem = image_problem(path)
        if problem:
            raise ImageUnreadable(f"{path} cannot be used as an image: {problem}")
        return ImageSet([path], [""], [None], path.parent)
    files = [f for f in sorted(path.rglob("*"))
             if f.is_file() and not _hidden(f.relative_to(path)) and f.name.lower() not in _SYSTEM_FILES]
    images, skipped = _scan(files)
    if not images:
        raise DataFileError(f"{path} holds no readable images (looked for {', '.join(IMAGE_SUFFIXES)} in it and its "
                            f"subfolders{f'; skipped {len(skipped)} other files' if skipped else ''})")
    _warn_skipped(skipped, path)
    return ImageSet(images, [""] * len(images), [None] * len(images), path, skipped)


def _read_train(root: Path) -> ImageSet:
    good = root / "train" / GOOD
    if not good.is_dir():
        raise DataFileError(f"{root} has no train/good folder; an anomaly model learns from good images only: "
                            f"put them in {good}")
    images, skipped = _scan([f for f in _entries(good) if f.is_file()])
    if not images:
        raise DataFileError(f"{good} holds no images{_why_empty(good, skipped)}; an anomaly model learns from good "
                            f"images only: put them in {good}")
    others = [f.name for f in _entries(root / "train") if f.is_dir() and f.name != GOOD]
    if others:
        warn(f"ignored train/{', train/'.join(others)} in {root}: an anomaly model learns from good images only "
             "(defect images belong in test/<defect>)")
    _warn_skipped(skipped, root)
    return ImageSet(images, [GOOD] * len(images), [None] * len(images), root, skipped)


def _read_test(root: Path) -> ImageSet:
    test = root / "test"
    if not test.is_dir():
        raise DataFileError(f"{root} has no test folder; put test images in {test / GOOD} and {test}/<defect>/")
    folders = sorted((f for f in _entries(test) if f.is_dir()), key=lambda f: (f.name != GOOD, f.name))
    paths, labels, masks, skipped = [], [], [], []
    empty, unmasked, unused = [], [], []
    for folder in folders:
        images, bad = _scan([f for f in _entries(folder) if f.is_file()])
        skipped += bad
        if not images:
            empty.append(folder.name)
            continue
        candidates = None if folder.name == GOOD else _mask_files(root / "ground_truth" / folder.name)
        found = [None if candidates is None else _mask_of(candidates, image) for image in images]
        if candidates is not None and (root / "ground_truth" / folder.name).is_dir():
            unmasked += [image for image, mask in zip(images, found, strict=True) if mask is None]
            unused += sorted(set(candidates.values()) - set(found))
        paths += images
        labels += [folder.name] * len(images)
        masks += found
    if not paths:
        raise DataFileError(f"{test} holds no images; put them in {test / GOOD} and {test}/<defect>/")
    if empty:
        warn(f"ignored empty folders in {test}: {', '.join(empty)}")
    if unmasked:
        named = ", ".join(str(image.relative_to(test)) for image in unmasked[:_LISTED])
        more = f" and {len(unmasked) - _LISTED} more" if len(unmasked) > _LISTED else ""
        hint = (f"; {len(unused)} files there match no image (e.g. {unused[0].relative_to(root)}): a mask is named "
                "<image>_mask, <image>_label, <image>_gt or <image>, with any image suffix") if unused else ""
        warn(f"{len(unmasked)} defect images in {test} have no mask in {root / 'ground_truth'} ({named}{more}); "
             f"they count for image scores but not for pixel scores{hint}")
    _warn_skipped(skipped, root)
    return ImageSet(paths, labels, masks, root, skipped)


def _mask_files(folder: Path) -> dict[str, Path]:
    """The image files of a ground-truth folder by lower-case stem (none when there is no such folder); a PNG
    wins over other formats of one stem."""
    if not folder.is_dir():
        return {}
    files = [f for f in _entries(folder) if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
    files.sort(key=lambda f: IMAGE_SUFFIXES.index(f.suffix.lower()))
    masks: dict[str, Path] = {}
    for file in files:
        masks.setdefault(file.stem.lower(), file)
    return masks


def _mask_of(masks: dict[str, Path], image: Path) -> Path | None:
    """The mask of `image` among a ground-truth folder's files, by the first naming convention that matches."""
    for ending in MASK_ENDINGS:
        found = masks.get(f"{image.stem}{ending}".lower())
        if found is not None:
            return found
    return None


def _folder(root, expected: str) -> Path:
    root = Path(root)
    if not root.exists():
        raise DataFileError(f"{root}: no such folder")
    if not root.is_dir():
        raise DataFileError(f"{root} is a file, expected {expected}")
    return root


def _entries(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if not f.name.startswith(".") and f.name.lower() not in _SYSTEM_FILES)


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def _scan(files: list[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The files that are usable images, and the others with the reason."""
    images, skipped = [], []
    for file in files:
        problem = image_problem(file)
        if problem:
            skipped.append((file, problem))
        else:
            images.append(file)
    return images, skipped


def _why_empty(folder: Path, skipped: list[tuple[Path, str]]) -> str:
    if skipped:
        return f" (its {len(skipped)} files are not readable images, e.g. {skipped[0][0].name}: {skipped[0][1]})"
    if any(f.is_dir() for f in _entries(folder)):
        return " (only subfolders: images must sit directly inside it)"
    return ""


def _warn_skipped(skipped: list[tuple[Path, str]], root: Path) -> None:
    if not skipped:
        return
    named = [f"{_relative(file, root)} ({why})" for file, why in skipped[:_LISTED]]
    more = f" and {len(skipped) - _LISTED} more" if len(skipped) > _LISTED else ""
    warn(f"skipped {len(skipped)} files in {root} that are not readable images: {', '.join(named)}{more}")


def _relative(file: Path, root: Path) -> str:
    try:
        return str(file.relative_to(root))
    except ValueError:
        return str(file)
