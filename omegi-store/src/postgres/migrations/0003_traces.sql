-- Traces, issues and statistics: the data path.
--
-- Values the store decodes whole (a trace's summary, an issue, an
-- occurrence's error, a batch of spans) are postcard in bytea, as on the
-- embedded store; the columns beside them are what queries filter and sort
-- on. Trace ids are 16 bytes big-endian, so that bytea order is id order.
-- Occurrence ids (u64) are stored with their top bit flipped, so that
-- bigint order is id order.

-- The spans of one trace written by one ingest, as one postcard chunk.
-- Partitioned by the latest span start in it, one partition per day, so
-- that retention drops partitions instead of deleting rows.
CREATE SEQUENCE span_chunks_seq;
CREATE TABLE span_chunks (
    project text COLLATE "C" NOT NULL,
    trace_id bytea NOT NULL,
    seq bigint NOT NULL DEFAULT nextval('span_chunks_seq'),
    latest_ns bigint NOT NULL,
    spans bytea NOT NULL,
    PRIMARY KEY (project, trace_id, seq, latest_ns)
) PARTITION BY RANGE (latest_ns);
CREATE INDEX span_chunks_by_trace ON span_chunks (project, trace_id, seq);
-- Rows of days without a partition of their own (far in the past or the
-- future) land here; retention deletes their rows one by one.
CREATE TABLE span_chunks_default PARTITION OF span_chunks DEFAULT;

-- One summary per trace (a SummaryRow).
CREATE TABLE traces (
    project text COLLATE "C" NOT NULL,
    trace_id bytea NOT NULL,
    start_ns bigint NOT NULL,
    services text[] COLLATE "C" NOT NULL,
    summary bytea NOT NULL,
    PRIMARY KEY (project, trace_id)
);
CREATE INDEX traces_by_start ON traces (project, start_ns, trace_id);

-- Every settled trace, kept or sampled out (a SettledRow).
CREATE TABLE settled (
    project text COLLATE "C" NOT NULL,
    trace_id bytea NOT NULL,
    start_ns bigint NOT NULL,
    row_data bytea NOT NULL,
    PRIMARY KEY (project, trace_id)
);
CREATE INDEX settled_by_start ON settled (project, start_ns);

-- Issues (an IssueRow), with the fields lists sort and filter on.
CREATE TABLE issues (
    project text COLLATE "C" NOT NULL,
    fingerprint text COLLATE "C" NOT NULL,
    status smallint NOT NULL,
    count bigint NOT NULL,
    first_seen_ns bigint NOT NULL,
    last_seen_ns bigint NOT NULL,
    row_data bytea NOT NULL,
    PRIMARY KEY (project, fingerprint)
);
CREATE INDEX issues_by_last_seen ON issues (project, last_seen_ns, fingerprint);
CREATE INDEX issues_by_first_seen ON issues (project, first_seen_ns, fingerprint);

-- Occurrences (an SError, and its consequences), partitioned by time like
-- the spans.
CREATE TABLE occurrences (
    project text COLLATE "C" NOT NULL,
    fingerprint text COLLATE "C" NOT NULL,
    time_ns bigint NOT NULL,
    id bigint NOT NULL,
    error bytea NOT NULL,
    consequences bytea,
    PRIMARY KEY (project, fingerprint, time_ns, id)
) PARTITION BY RANGE (time_ns);
CREATE INDEX occurrences_by_time ON occurrences (project, time_ns);
CREATE TABLE occurrences_default PARTITION OF occurrences DEFAULT;

-- Occurrences per issue and bucket, kept with the occurrences.
CREATE TABLE issue_counters (
    project text COLLATE "C" NOT NULL,
    fingerprint text COLLATE "C" NOT NULL,
    bucket "char" NOT NULL,
    start_ns bigint NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (project, fingerprint, bucket, start_ns)
);

-- Errors per project and bucket, and per service and bucket.
CREATE TABLE error_counters (
    project text COLLATE "C" NOT NULL,
    bucket "char" NOT NULL,
    start_ns bigint NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (project, bucket, start_ns)
);
CREATE TABLE service_error_counters (
    project text COLLATE "C" NOT NULL,
    service text COLLATE "C" NOT NULL,
    bucket "char" NOT NULL,
    start_ns bigint NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (project, service, bucket, start_ns)
);

-- Running totals of what was ingested.
CREATE TABLE totals (
    project text COLLATE "C" PRIMARY KEY,
    spans bigint NOT NULL,
    traces bigint NOT NULL,
    errors bigint NOT NULL
);

-- The services that sent data (attributes: postcard).
CREATE TABLE services (
    project text COLLATE "C" NOT NULL,
    service text COLLATE "C" NOT NULL,
    attributes bytea NOT NULL,
    last_seen_ns bigint NOT NULL,
    PRIMARY KEY (project, service)
);

-- Traffic of every settled trace: requests per route (RouteCounts), calls
-- per pair of services, the routes counted by name, the sampling totals.
CREATE TABLE traffic_routes (
    project text COLLATE "C" NOT NULL,
    bucket "char" NOT NULL,
    start_ns bigint NOT NULL,
    service text COLLATE "C" NOT NULL,
    route text COLLATE "C" NOT NULL,
    counts bytea NOT NULL,
    PRIMARY KEY (project, bucket, start_ns, service, route)
);
CREATE TABLE traffic_edges (
    project text COLLATE "C" NOT NULL,
    bucket "char" NOT NULL,
    start_ns bigint NOT NULL,
    caller text COLLATE "C" NOT NULL,
    callee text COLLATE "C" NOT NULL,
    calls bigint NOT NULL,
    errors bigint NOT NULL,
    PRIMARY KEY (project, bucket, start_ns, caller, callee)
);
CREATE TABLE route_names (
    project text COLLATE "C" NOT NULL,
    service text COLLATE "C" NOT NULL,
    route text COLLATE "C" NOT NULL,
    PRIMARY KEY (project, service, route)
);
CREATE TABLE sampling_totals (
    project text COLLATE "C" PRIMARY KEY,
    totals bytea NOT NULL
);
