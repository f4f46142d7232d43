"""Errors of the storage adapters, translated from the drivers at the seam.

StoreError
├── UniqueViolation     an insert or update hit a unique index
├── UnstorableText      a text holds a character the database cannot take (NUL on PostgreSQL, a lone surrogate)
└── StoreUnavailable    the database did not answer, or refused the connection, within the deadline
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of storage failures."""


class UniqueViolation(StoreError):
    """A unique index rejected the write."""


class UnstorableText(StoreError):
    """A value given to the database holds a character it cannot take: NUL (PostgreSQL's text cannot hold it)
    or a lone surrogate (not UTF-8). Such values come from clients: the edge answers 422."""


class StoreUnavailable(StoreError):
    """The database cannot be reached in time."""
