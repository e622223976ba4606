"""The sandbox's two SQLite files and their SQL (used by :mod:`.inbox` and :mod:`.store`).

- ``sandbox.sqlite``: ``decisions`` and ``conversions`` (deduplicated: a unique index on
  ``(entity_id, uuid, timestamp)``), ``counters``, the ``datafile`` served, and ``settled`` (how far
  the inbox has been moved in);
- ``inbox.sqlite``: bodies appended by ``POST /v1/events`` and not yet deduplicated, with no index;
  one ``bodies`` row per body holds the body-level values, its row ranges and which of the two sets
  of row tables (:data:`PARTS`) holds them; ``counts`` holds counter increments.
"""

from __future__ import annotations

__all__ = ["DB_NAME", "INBOX_NAME", "DECISION_COLUMNS", "CONVERSION_COLUMNS", "BODY_COLUMNS",
           "DECISION_EVENT_COLUMNS", "CONVERSION_EVENT_COLUMNS", "MAIN_SCHEMA", "INBOX_SCHEMA", "BUMP", "PARTS"]

DB_NAME = "sandbox.sqlite"
INBOX_NAME = "inbox.sqlite"

DECISION_COLUMNS = (
    "entity_id", "uuid", "timestamp", "visitor_id", "campaign_id", "experiment_id", "variation_id",
    "flag_key", "rule_key", "rule_type", "variation_key", "enabled", "running", "attributes",
    "revision", "client_name", "client_version", "account_id", "received_at",
)
CONVERSION_COLUMNS = (
    "entity_id", "uuid", "timestamp", "key", "visitor_id", "revenue", "value", "tags", "attributes",
    "revision", "client_name", "client_version", "account_id", "received_at",
)
BODY_COLUMNS = ("revision", "client_name", "client_version", "account_id", "received_at")
DECISION_EVENT_COLUMNS = DECISION_COLUMNS[: -len(BODY_COLUMNS)]  # what check_body's rows hold
CONVERSION_EVENT_COLUMNS = CONVERSION_COLUMNS[: -len(BODY_COLUMNS)]

MAIN_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    entity_id TEXT NOT NULL, uuid TEXT NOT NULL, timestamp INTEGER NOT NULL, visitor_id TEXT NOT NULL,
    campaign_id TEXT NOT NULL, experiment_id TEXT NOT NULL, variation_id TEXT NOT NULL,
    flag_key TEXT, rule_key TEXT, rule_type TEXT, variation_key TEXT, enabled INTEGER,
    running INTEGER NOT NULL,            -- the experiment was running (datafile in force at receipt)
    attributes BLOB, revision TEXT, client_name TEXT, client_version TEXT, account_id TEXT,
    received_at REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS decisions_dedup ON decisions (entity_id, uuid, timestamp);
CREATE TABLE IF NOT EXISTS conversions (
    entity_id TEXT NOT NULL, uuid TEXT NOT NULL, timestamp INTEGER NOT NULL, key TEXT NOT NULL,
    visitor_id TEXT NOT NULL, revenue INTEGER, value REAL, tags BLOB, attributes BLOB,
    revision TEXT, client_name TEXT, client_version TEXT, account_id TEXT, received_at REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS conversions_dedup ON conversions (entity_id, uuid, timestamp);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS datafile (
    id INTEGER PRIMARY KEY CHECK (id = 1), text TEXT NOT NULL, etag TEXT NOT NULL,
    last_modified REAL NOT NULL, revision TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS settled (   -- inbox bodies.seq / counts.seq moved in, committed with them
    name TEXT PRIMARY KEY, seq INTEGER NOT NULL
);
"""

PARTS = (("decisions", "conversions"), ("decisions_1", "conversions_1"))  # the inbox's two sets of tables

_INBOX_DECISIONS = """(
    entity_id, uuid, timestamp, visitor_id, campaign_id, experiment_id, variation_id,
    flag_key, rule_key, rule_type, variation_key, enabled, running, attributes
)"""
_INBOX_CONVERSIONS = "(entity_id, uuid, timestamp, key, visitor_id, revenue, value, tags, attributes)"

INBOX_SCHEMA = """
CREATE TABLE IF NOT EXISTS bodies (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, revision TEXT, client_name TEXT, client_version TEXT,
    account_id TEXT, received_at REAL NOT NULL,
    decisions_from INTEGER NOT NULL, decisions_to INTEGER NOT NULL,        -- rowid range in decisions
    conversions_from INTEGER NOT NULL, conversions_to INTEGER NOT NULL,    -- rowid range in conversions
    part INTEGER NOT NULL DEFAULT 0                                        -- which set of tables: PARTS
);
CREATE TABLE IF NOT EXISTS counts (seq INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, value INTEGER NOT NULL);
""" + "".join(f"CREATE TABLE IF NOT EXISTS {d} {_INBOX_DECISIONS};\nCREATE TABLE IF NOT EXISTS {c} {_INBOX_CONVERSIONS};\n"
              for d, c in PARTS)

BUMP = "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value"
