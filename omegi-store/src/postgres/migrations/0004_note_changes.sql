-- Every change of a note is announced on the channel omegi_notes: the node
-- that made it (its connection's omegi.node setting, empty for other
-- writers) and the note's id, so that each node keeps its search index
-- current. A notification is sent when the transaction commits.
CREATE FUNCTION omegi_note_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(
        'omegi_notes',
        coalesce(current_setting('omegi.node', true), '') || ' ' ||
            (CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END)::text
    );
    RETURN NULL;
END
$$;

CREATE TRIGGER notes_changed AFTER INSERT OR UPDATE OR DELETE ON notes
    FOR EACH ROW EXECUTE FUNCTION omegi_note_changed();
