"""Errors of the storage adapters, translated from the drivers at the seam.

StoreError
├── UniqueViolation     an insert or update hit a unique index
└── StoreUnavailable    the database did not answer, or refused the connection, within the deadline
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of storage failures."""


class UniqueViolation(StoreError):
    """A unique index rejected the write."""


class StoreUnavailable(StoreError):
    """The database cannot be reached in time."""
