-- mockserver's state in PostgreSQL, layout 1 (issue 24): mockserver.storage.postgresql creates and checks it.
--
-- The tables are the SQLite file's (storage/sqlite_file.py, layout 4), column for column, so the two
-- engines answer the same queries; every row carries its session's name ('' for the default state).
-- Added for several processes on one state:
--   changes         each session's change log, the single order of its writes: n = 1, 2, 3 ... without gaps,
--                   appended under the session's advisory lock in the transaction of the write it describes;
--                   a process applies the rows after the last n it has seen (the primary key serves
--                   "after n in session S"); each session keeps its last 1,000 rows;
--   records.seq     the order records were first written in (SQLite's rowid): a session loads in that order;
--   records.row_version  bumped by every write of a record, for a write that checks what it read;
--   journal, violations  what every instance answered and every broken message it saw, for the inspector;
--   journal_demand, journal_cleared  when a reader last read the journal (instances write their entries
--                   only while one does) and when each session's journal was last cleared (added to layout 1
--                   before its release: a database made by an earlier build of it is made again);
--   layout_versions one row per layout applied: the newest is the database's layout.
-- JSON columns are `json`, not `jsonb`: json keeps the text as written, so a record comes back with its
-- fields in the order the mock wrote them (jsonb would sort them); the columns a query filters on are
-- columns of their own, as in SQLite.
-- Run in one transaction, under the advisory lock mockserver.storage.postgresql takes, so that two
-- instances starting on an empty database create it once.

CREATE TABLE layout_versions (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sessions (
    name text PRIMARY KEY,
    created_at text NOT NULL,
    last_used text NOT NULL,
    counters json NOT NULL,
    chaos json NOT NULL DEFAULT '{}'
);

CREATE TABLE records (
    session text NOT NULL DEFAULT '',
    kind text NOT NULL,
    key text NOT NULL,
    data json NOT NULL,
    row_version bigint NOT NULL DEFAULT 1,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (session, kind, key)
);

CREATE TABLE versions (
    session text NOT NULL DEFAULT '',
    id bigint NOT NULL,
    profile_id bigint NOT NULL,
    version integer NOT NULL,
    data json NOT NULL,
    PRIMARY KEY (session, id)
);
CREATE INDEX versions_by_profile ON versions (session, profile_id, version);

CREATE TABLE audit (
    session text NOT NULL DEFAULT '',
    id bigint NOT NULL,
    profile_id bigint,
    action text NOT NULL,
    user_id text,
    data json NOT NULL,
    PRIMARY KEY (session, id)
);
CREATE INDEX audit_by_profile ON audit (session, profile_id, id);
CREATE INDEX audit_by_action ON audit (session, action, id);
CREATE INDEX audit_by_profile_action ON audit (session, profile_id, action, id);
CREATE INDEX audit_by_user ON audit (session, user_id, id);

CREATE TABLE history_counts (
    session text NOT NULL DEFAULT '',
    key text NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (session, key)
);

CREATE TABLE snapshots (
    session text NOT NULL DEFAULT '',
    name text NOT NULL,
    created_at text NOT NULL,
    profiles integer NOT NULL,
    data json NOT NULL,
    PRIMARY KEY (session, name)
);

CREATE TABLE snapshot_versions (
    session text NOT NULL DEFAULT '',
    snapshot text NOT NULL,
    id bigint NOT NULL,
    profile_id bigint NOT NULL,
    version integer NOT NULL,
    data json NOT NULL,
    PRIMARY KEY (session, snapshot, id)
);

CREATE TABLE snapshot_audit (
    session text NOT NULL DEFAULT '',
    snapshot text NOT NULL,
    id bigint NOT NULL,
    profile_id bigint,
    action text NOT NULL,
    user_id text,
    data json NOT NULL,
    PRIMARY KEY (session, snapshot, id)
);

CREATE TABLE changes (
    session text NOT NULL,
    n bigint NOT NULL,
    data json NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session, n)
);

CREATE TABLE journal (
    seq bigserial PRIMARY KEY,
    session text NOT NULL,
    instance text NOT NULL,
    at text NOT NULL,
    size integer NOT NULL,
    data json NOT NULL
);
CREATE INDEX journal_by_session ON journal (session, seq);

CREATE TABLE violations (
    seq bigserial PRIMARY KEY,
    session text NOT NULL,
    instance text NOT NULL,
    at text NOT NULL,
    data json NOT NULL
);
CREATE INDEX violations_by_session ON violations (session, seq);

-- The journal is written only while someone reads it: when a reader last did (the database's clock, seconds
-- since the epoch), and, by session, when it was last cleared (the clearing instance's clock).
CREATE TABLE journal_demand (
    id integer PRIMARY KEY CHECK (id = 1),
    read_at double precision NOT NULL
);

CREATE TABLE journal_cleared (
    session text PRIMARY KEY,
    at double precision NOT NULL
);

INSERT INTO layout_versions (version) VALUES (1);
