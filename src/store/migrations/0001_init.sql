-- 0001: documents, the revision log and change feed, and the append-only audit log.

-- Every collection lives in one table: the store treats `data` as opaque JSON text.
CREATE TABLE documents (
  collection     TEXT    NOT NULL,
  key            TEXT    NOT NULL,
  parent         TEXT    NOT NULL DEFAULT '',
  data           TEXT    NOT NULL,
  etag           TEXT    NOT NULL,
  revision       INTEGER NOT NULL,
  create_time_us INTEGER NOT NULL,
  update_time_us INTEGER NOT NULL,
  PRIMARY KEY (collection, key)
) WITHOUT ROWID;

CREATE INDEX documents_by_parent ON documents (collection, parent, key);

-- One row per committed write transaction; MAX(revision) is the store's revision.
CREATE TABLE revisions (
  revision       INTEGER PRIMARY KEY,
  commit_time_us INTEGER NOT NULL
);

-- The change feed: the last operation on each key in each revision.
CREATE TABLE changes (
  revision   INTEGER NOT NULL REFERENCES revisions (revision),
  collection TEXT    NOT NULL,
  key        TEXT    NOT NULL,
  op         TEXT    NOT NULL CHECK (op IN ('put', 'delete')),
  PRIMARY KEY (revision, collection, key)
) WITHOUT ROWID;

CREATE TABLE audit_log (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  time_us    INTEGER NOT NULL,
  kind       TEXT    NOT NULL CHECK (kind IN ('ADMIN_ACTIVITY', 'DATA_ACCESS')),
  principal  TEXT    NOT NULL,
  method     TEXT    NOT NULL,
  resource   TEXT    NOT NULL,
  request_id TEXT    NOT NULL,
  status     TEXT    NOT NULL,
  details    TEXT    NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_log_by_resource ON audit_log (resource, id);
CREATE INDEX audit_log_by_principal ON audit_log (principal, id);
CREATE INDEX audit_log_by_request_id ON audit_log (request_id, id);
CREATE INDEX audit_log_by_time ON audit_log (time_us, id);

-- Append-only, enforced by the database itself.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
  SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
  SELECT RAISE(ABORT, 'audit_log is append-only');
END;
