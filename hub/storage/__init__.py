"""Entry storage: a back-end-neutral interface and table, and the DuckDB back end."""

from hub.storage.base import IngestResult, Storage, StorageError
from hub.storage.rows import BatchError, row_to_entry
from hub.storage.schema import entries_table

__all__ = ["BatchError", "IngestResult", "Storage", "StorageError", "entries_table", "row_to_entry"]
