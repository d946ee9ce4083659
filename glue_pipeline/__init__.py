"""glue-pipeline: Microsoft 365 to IT-documentation sync on Dagster."""

import logging

from glue_pipeline.render import terminal_text


class TerminalSafeRecords(logging.Filter):
    """Makes the message of a record of this package's loggers one terminal-safe line (names in
    it come from customers' tenants) and its traceback safe line by line. Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.name, str) and super().filter(record):  # makeLogRecord names none
            try:
                message = record.getMessage()
            except (TypeError, ValueError):  # a bad format: the handler reports it as usual
                return True
            record.msg, record.args = terminal_text(message), ()
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
