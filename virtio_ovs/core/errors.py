"""Exceptions with the exit codes the CLI maps them to.

UserError: the request is wrong (exit 1). SystemError-like failures of
OVSDB, ovs-vswitchd or the kernel are ``EnvironmentFailure`` (exit 2).
"""


class VirtioOvsError(Exception):
    exit_code = 2


class UserError(VirtioOvsError):
    """Bad input. The message always names the field and the rule."""

    exit_code = 1

    def __init__(self, field: str, rule: str, line: int | None = None):
        self.field = field
        self.rule = rule
        self.line = line
        where = f"line {line}: " if line is not None else ""
        super().__init__(f"{where}{field}: {rule}")

    def at_line(self, line: int) -> "UserError":
        return UserError(self.field, self.rule, line)


class EnvironmentFailure(VirtioOvsError):
    """OVSDB, ovs-vswitchd or the kernel failed (exit 2)."""


class OvsdbTimeout(EnvironmentFailure):
    """No answer in time. What the interrupted write did is in its
    outcome (``core.outcomes``), not here: exceptions carry a message
    only, and are never changed after they are raised."""

    def with_detail(self, what: str) -> "OvsdbTimeout":
        """A new timeout whose message adds ``what``."""
        return OvsdbTimeout(f"{self}; {what}")


class VswitchdError(EnvironmentFailure):
    """ovs-vswitchd rejected an interface (Interface.error is set)."""
