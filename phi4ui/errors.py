"""The errors phi4ui raises on purpose.

Each class says who must act: the person (`BadInput`), the operator
(`SettingsError`) or nobody but a retry (`EngineUnavailable`). Their message is
written to be shown as it is, in the page or on one line of the terminal.
Anything else that escapes is a bug: it is logged with its traceback and the
person sees a generic apology.
"""


class Phi4UIError(Exception):
    """Base class; `str(error)` is a plain sentence meant for a person."""


class SettingsError(Phi4UIError):
    """A flag or environment variable has a value that cannot work."""


class BadInput(Phi4UIError):
    """The person's message or upload cannot be used; nothing else is lost."""


class PromptTooLong(BadInput):
    """The prompt does not fit the model's context, even after dropping old media."""


class EngineUnavailable(Phi4UIError):
    """The engine is loading, down or failed mid-answer; the person can retry."""
