"""Errors the core raises; the CLI turns each into one stderr line and its exit code."""


class RetailctlError(Exception):
    """A failure the operator can act on; `exit_code` is SPEC §4's."""

    exit_code = 1


class UsageError(RetailctlError):
    """A bad argument (exit 2)."""

    exit_code = 2


class DatabaseUnavailable(RetailctlError):
    """The database cannot be reached or is not migrated (exit 3)."""

    exit_code = 3


class LogDirMissing(RetailctlError):
    """The log directory does not exist (exit 3)."""

    exit_code = 3


class LogUnreadable(RetailctlError):
    """The log directory, or the file to follow, cannot be read (exit 3)."""

    exit_code = 3


class NothingFound(RetailctlError):
    """The search matched nothing (exit 1)."""

    exit_code = 1
