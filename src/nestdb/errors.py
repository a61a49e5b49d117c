"""Exceptions with messages meant for the person who wrote the config or data."""


class NestdbError(Exception):
    """Base class of all errors raised on purpose by nestdb."""


class ConfigError(NestdbError, ValueError):
    """A configuration value is wrong; the message names the key and the fix."""


class DataError(NestdbError, ValueError):
    """An input file is missing, truncated or inconsistent; the message names the file."""
