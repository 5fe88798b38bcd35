"""Errors raised by the storage layer (database access and the stores).

Messages never contain personal data, document bodies, SQL parameters or key
material: only ids, codes and counts.
"""

from __future__ import annotations

from gateway.core.errors import ConfigurationError, Conflict, NotFound, Unavailable


class UnsupportedDatabase(ConfigurationError):
    """The database URL names a backend the gateway does not support (use sqlite or postgresql)."""

    code = "DATABASE_URL_UNSUPPORTED"


class SchemaNotCurrent(ConfigurationError):
    """The database schema is not at the version this gateway needs; run the migrations."""

    code = "DATABASE_SCHEMA_OUTDATED"


class DatabaseDriverMissing(ConfigurationError):
    """The database URL needs a driver that is not installed (PostgreSQL: install imi-gateway[postgres])."""

    code = "DATABASE_DRIVER_MISSING"


class DatabaseSchemaTooNew(ConfigurationError):
    """The database schema is newer than this gateway (it was migrated by a newer version); upgrade the gateway."""

    code = "DATABASE_SCHEMA_TOO_NEW"


class DatabaseUnavailable(Unavailable):
    """The database cannot be reached or refused the operation (the cause is named); retry later."""

    code = "DATABASE_UNAVAILABLE"
    # The CLI (and a node that cannot start) reports it like a configuration problem.
    exit_status = 3


class DatabaseBusy(Unavailable):
    """The database stayed locked or kept reporting conflicting transactions; retry later."""

    code = "DATABASE_BUSY"


class TransactionRace(DatabaseBusy):
    """A concurrent transaction wrote the same row first; the transaction is retried."""

    code = "DATABASE_TRANSACTION_RACE"


class DuplicateMessage(Conflict):
    """The message id was already accepted with the same bytes; the original receipt is returned again."""

    code = "MESSAGE_DUPLICATE"

    def __init__(self, message_id: str, receipt: bytes) -> None:
        super().__init__(f"message {message_id} was already accepted")
        self.message_id = message_id
        self.receipt = receipt


class MessageIdReused(Conflict):
    """The message id is already in use for different bytes (message ids are unique forever)."""

    code = "MESSAGE_ID_REUSED"

    def __init__(self, message_id: str) -> None:
        super().__init__(f"message id {message_id} is already in use for a different document")
        self.message_id = message_id


class EnvelopeIdReused(Conflict):
    """The envelope id was already received with different bytes."""

    code = "ENVELOPE_ID_REUSED"

    def __init__(self, envelope_id: str) -> None:
        super().__init__(f"envelope id {envelope_id} was already received with different bytes")
        self.envelope_id = envelope_id


class ExchangeMismatch(Conflict):
    """The document names an existing exchange but different authorities or nodes than it has."""

    code = "EXCHANGE_MISMATCH"

    def __init__(self, exchange_id: str, field: str) -> None:
        super().__init__(f"exchange {exchange_id} has a different {field}")
        self.exchange_id = exchange_id
        self.field = field


class ExchangeStateChanged(Conflict):
    """The exchange is no longer in the state the operation expected (a concurrent change won)."""

    code = "EXCHANGE_STATE_CHANGED"


class ExchangeNotFound(NotFound):
    """No exchange with this id is stored on this node."""

    code = "EXCHANGE_NOT_FOUND"


class MessageNotFound(NotFound):
    """No message with this id is stored on this node."""

    code = "MESSAGE_NOT_FOUND"


class ExchangeErased(NotFound):
    """The exchange's personal data has been erased (retention period ended); it cannot be read or extended."""

    code = "EXCHANGE_ERASED"
    http_status = 410
