-- Notes, their name, link and issue indexes, and their attached files.
-- The indexes derive from the notes and are written in the transaction
-- that writes the note; a note's rows in them go with it.
CREATE TABLE notes (
    id uuid PRIMARY KEY,
    author text COLLATE "C" NOT NULL,
    title text NOT NULL,
    folder text NOT NULL,
    body text NOT NULL,
    tags text[] NOT NULL,
    aliases text[] NOT NULL,
    public boolean NOT NULL,
    issues text[] NOT NULL,
    created_ns bigint NOT NULL,
    updated_ns bigint NOT NULL,
    revision bigint NOT NULL
);
CREATE INDEX notes_by_author ON notes (author, id);

-- Every name a [[link]] can use for a note: its title (kind 0) and
-- aliases (kind 1), as lookup keys.
CREATE TABLE note_names (
    key text COLLATE "C" NOT NULL,
    note uuid NOT NULL REFERENCES notes (id) ON DELETE CASCADE,
    kind smallint NOT NULL,
    PRIMARY KEY (key, note)
);
CREATE INDEX note_names_by_note ON note_names (note);

-- Every key a note's links are indexed under.
CREATE TABLE note_links (
    key text COLLATE "C" NOT NULL,
    note uuid NOT NULL REFERENCES notes (id) ON DELETE CASCADE,
    PRIMARY KEY (key, note)
);
CREATE INDEX note_links_by_note ON note_links (note);

CREATE TABLE note_issues (
    fingerprint text COLLATE "C" NOT NULL,
    note uuid NOT NULL REFERENCES notes (id) ON DELETE CASCADE,
    PRIMARY KEY (fingerprint, note)
);
CREATE INDEX note_issues_by_note ON note_issues (note);

-- A note's files, by the key of their name; their bytes in the same row.
CREATE TABLE attachments (
    note uuid NOT NULL REFERENCES notes (id) ON DELETE CASCADE,
    key text COLLATE "C" NOT NULL,
    name text NOT NULL,
    content_type text NOT NULL,
    inline_image boolean NOT NULL,
    size bigint NOT NULL,
    sha256 text NOT NULL,
    created_ns bigint NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (note, key)
);
CREATE INDEX attachments_by_key ON attachments (key);
