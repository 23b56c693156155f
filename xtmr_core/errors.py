"""The one exception type the engine raises for bad user input."""


class XtmrError(ValueError):
    """A user-facing error: its message is one line that says what is wrong and how to fix it.

    The CLI prints it on stderr and exits with code 2; the app shows it as an error box.
    """
