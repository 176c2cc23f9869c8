"""One exception hierarchy for the hub, mapped once to HTTP answers and CLI exit codes."""


class MimamoriError(Exception):
    """Base of every error the hub raises on purpose."""

    exit_code = 1


class ConfigError(MimamoriError):
    """A setting is malformed or names something that cannot be reached."""

    exit_code = 2


class UnreachableError(MimamoriError):
    """A service (database, broker) did not answer at the configured address."""

    exit_code = 3


class ValidationError(MimamoriError):
    """Input from outside the hub did not pass validation."""


class NotFound(MimamoriError):
    """The named object does not exist (or is not visible to the caller)."""


class Forbidden(MimamoriError):
    """The caller is known but may not do this."""
