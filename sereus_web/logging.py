"""Logging helpers referenced from the LOGGING setting."""

import logging


class OneLine(logging.Filter):
    """Drop the traceback from records that are expected events, not bugs (a request with a
    foreign Host header is refused by design; its stack trace is noise an attacker can cause)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return True
