-- Projects, users, memberships and tokens.
CREATE TABLE projects (
    id text COLLATE "C" PRIMARY KEY,
    name text NOT NULL,
    created_ns bigint NOT NULL
);

CREATE TABLE users (
    login text COLLATE "C" PRIMARY KEY,
    name text NOT NULL,
    email text,
    created_ns bigint NOT NULL,
    admin boolean NOT NULL DEFAULT false
);

-- A membership may name a project that does not exist (yet): a user is
-- stored with the projects they are given, as on the embedded store;
-- removing a project removes its memberships.
CREATE TABLE memberships (
    login text COLLATE "C" NOT NULL REFERENCES users (login) ON DELETE CASCADE,
    project text COLLATE "C" NOT NULL,
    PRIMARY KEY (login, project)
);
CREATE INDEX memberships_by_project ON memberships (project);

-- A token belongs to exactly one project or one user, and goes with it.
CREATE TABLE tokens (
    id text COLLATE "C" NOT NULL,
    hash text COLLATE "C" NOT NULL,
    project text COLLATE "C",
    login text COLLATE "C",
    label text NOT NULL,
    created_ns bigint NOT NULL,
    last_used_ns bigint,
    CONSTRAINT tokens_id PRIMARY KEY (id),
    CONSTRAINT tokens_hash UNIQUE (hash),
    CONSTRAINT tokens_project FOREIGN KEY (project) REFERENCES projects (id) ON DELETE CASCADE,
    CONSTRAINT tokens_login FOREIGN KEY (login) REFERENCES users (login) ON DELETE CASCADE,
    CONSTRAINT tokens_one_owner CHECK ((project IS NULL) <> (login IS NULL))
);
CREATE INDEX tokens_by_project ON tokens (project) WHERE project IS NOT NULL;
CREATE INDEX tokens_by_login ON tokens (login) WHERE login IS NOT NULL;
