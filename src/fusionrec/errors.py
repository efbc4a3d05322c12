"""Errors that say what went wrong and what to do about it."""


class FusionrecError(Exception):
    """Base class of every error the library raises on purpose."""


class DataError(FusionrecError, ValueError):
    """Input data is missing, malformed or inconsistent."""


class ConfigError(FusionrecError, ValueError):
    """An unknown model, parameter or option, or a value of the wrong kind."""


class NotFittedError(FusionrecError, RuntimeError):
    """A model was asked to score before ``fit`` (or ``load``)."""


class UnknownUserError(FusionrecError, KeyError):
    """A raw user id the model has never seen."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class UnknownItemError(FusionrecError, KeyError):
    """A raw item id the model has never seen."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConflictError(FusionrecError):
    """The request clashes with the current state (e.g. an item id that already exists)."""


class UnsupportedError(FusionrecError):
    """This artifact cannot do what was asked (e.g. featurise new items without recorded extractors)."""


class UnsupportedMediaError(FusionrecError):
    """An upload that is not what the endpoint accepts (e.g. not an image)."""


class TooLargeError(DataError):
    """Input over a configured size limit (an image declaring too many pixels, a file too big to read)."""
