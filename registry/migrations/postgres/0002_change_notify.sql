-- Followers waiting in wait_for_changes LISTEN on 'idnode_changes' instead of polling.
-- One notification per statement that appends to the log; PostgreSQL delivers it at
-- commit (never for a rollback) and folds identical ones of a transaction into one, so a
-- bulk chunk of 2,000 rows wakes a waiter once. Any writer of the log (a later import
-- tool too) notifies, not only the store.
CREATE FUNCTION idnode_notify_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('idnode_changes', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER changes_notify AFTER INSERT ON changes
    FOR EACH STATEMENT EXECUTE FUNCTION idnode_notify_changes();
