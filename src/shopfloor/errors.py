"""Errors meant for people on the shop floor.

Every error the user can fix by changing their input derives from `ShopfloorError`.
The CLI prints such errors as one line and exits with code 2; anything else is a bug
and keeps its traceback. What was fixed up or ignored without failing is a `ShopfloorWarning`
(through `warn`), which the CLI prints as one line too: errors and warnings live together so
that every module tells people about their input the same way, from one import.
"""

from __future__ import annotations

import warnings


class ShopfloorWarning(UserWarning):
    """Something was fixed up or ignored; the user should know, nothing failed."""


def warn(message: str) -> None:
    """Tell the user what was fixed up or ignored, pointing at the line that called the function that warns."""
    warnings.warn(message, ShopfloorWarning, stacklevel=2)


class ShopfloorError(Exception):
    """A problem with the user's input, files or models that the user can fix."""


class DataFileError(ShopfloorError):
    """A data file is missing, empty, or cannot be read."""


class ImageUnreadable(DataFileError):
    """An image file is corrupt, truncated, not an image at all, or too large to read."""


class BadMask(ShopfloorError):
    """A defect mask does not fit its image (a different size) or cannot be used as a mask."""


class ColumnMissing(ShopfloorError):
    """A column the model or the command needs is not in the data."""


class BadColumn(ShopfloorError):
    """A column holds values the model cannot use (text in a numeric column, all missing, ...)."""


class BadTarget(ShopfloorError):
    """The target column cannot be learned (one class, missing values only, mixed tasks...)."""


class NotAModel(ShopfloorError):
    """A folder is not a shopfloor model, or its files are damaged or tampered with."""


class ModelTooNew(ShopfloorError):
    """The model was written by a newer shopfloor whose format this version cannot read."""


class NotFitted(ShopfloorError):
    """An estimator was asked to predict before it was fitted."""


class BadOption(ShopfloorError):
    """A command-line option or constructor parameter has a value that cannot work."""


class NotSupported(ShopfloorError):
    """A model was asked for a capability its task does not have (an ONNX file of an optimiser, ...)."""


class Infeasible(ShopfloorError):
    """No settings inside the bounds and the trust region meet the constraints; `closest` is the nearest miss."""

    def __init__(self, message: str, closest: dict | None = None):
        super().__init__(message)
        self.closest = closest
