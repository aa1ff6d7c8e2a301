"""The one exception type the command line and the app show to a user as a single clear line."""


class LearngeneError(Exception):
    """A problem with the user's input or environment, with a message that says what is wrong and how to fix it.

    The command line prints ``str(error)`` on one line (no traceback unless ``--debug``); the app shows it in
    ``st.error``. Raise it for bad paths, corrupt files, impossible configurations and offline downloads; let
    genuine bugs propagate as ordinary exceptions.
    """
