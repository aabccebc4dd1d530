"""Domain exceptions: every user-facing failure names the key, column or file at fault."""


class SystpipeError(Exception):
    """Base class of every error systpipe raises on purpose."""


class ConfigError(SystpipeError):
    """The configuration is invalid; the message names the key and what was expected."""


class IngestError(SystpipeError):
    """An input file cannot be turned into the event table; the message names file and column."""


class DataContractError(SystpipeError):
    """A Parquet hand-off lacks a required column or has the wrong type."""


class ModelError(SystpipeError):
    """A classifier or statistical model cannot be built, fitted, saved or loaded."""


__all__ = ["ConfigError", "DataContractError", "IngestError", "ModelError", "SystpipeError"]
