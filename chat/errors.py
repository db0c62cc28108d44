"""The one error type services raise for bad input; consumers and views translate it."""


class ChatError(Exception):
    """A refusal the client should see: ``code`` is stable, ``message`` is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
