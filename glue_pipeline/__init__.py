"""glue-pipeline: Microsoft 365 to IT-documentation sync on Dagster."""

import logging

from glue_pipeline.render import terminal_text


def _safe(value: object) -> object:
    """A log argument: numbers as they are (for %d, %.1f), anything else as safe text."""
    return value if isinstance(value, (int, float)) or value is None else terminal_text(str(value))


class TerminalSafeRecords(logging.Filter):
    """Makes the message of a record of this package's loggers one terminal-safe line (names in
    it come from customers' tenants) and its traceback safe line by line. Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.name, str) and super().filter(record):  # makeLogRecord names none
            # The message and each text argument made safe; the arguments stay arguments.
            record.msg = terminal_text(record.msg) if isinstance(record.msg, str) else record.msg
            if isinstance(record.args, dict):
                record.args = {k: _safe(v) for k, v in record.args.items()}
            elif isinstance(record.args, tuple):
                record.args = tuple(_safe(v) for v in record.args)
            if record.exc_info and not record.exc_text:
                record.exc_text = terminal_text(logging.Formatter().formatException(record.exc_info),
                                                multiline=True)
        return True


def _make_records_safe() -> None:
    """A filter on the package's logger would not see its modules' records (logging consults
    only the filters of the logger a record is logged on), so the filter is applied where every
    record is made; it touches only records of loggers named glue_pipeline[.*]."""
    make_record, safe = logging.getLogRecordFactory(), TerminalSafeRecords(__name__)

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        safe.filter(record)
        return record

    logging.setLogRecordFactory(factory)


_make_records_safe()
