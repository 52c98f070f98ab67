"""The one exception type users see as a clean message instead of a stack trace."""


class AssistantError(Exception):
    """A problem the user can fix (bad input, missing or mismatched index, unavailable model).

    The CLI prints ``str(error)`` and exits with status 2; the chat page shows it in the chat.
    Messages say what is wrong *and* what to do about it.
    """
