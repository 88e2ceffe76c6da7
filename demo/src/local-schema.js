// The local database of pattern 4, in PGlite (Postgres compiled to
// WebAssembly, persisted in IndexedDB). Idempotent: it runs at every start.
//
//   todos_synced   the server's rows, written only by the sync loop
//   todos_overlay  the page's pending changes, one row per touched to-do:
//                  which columns changed (changed), deleted, and the seq
//                  of the latest pending transaction that touched it
//   todos          the view the app reads and writes: overlay over synced
//   outbox         one row per local transaction: the mutations to send,
//                  with its seq; then the server's answer
//   meta           client_id, next_seq, the shape's handle and offset,
//                  synced_lsn (how far the synced rows have caught up)
//
// The app writes the view; INSTEAD OF triggers turn each write into an
// overlay change plus a mutation appended to the current local
// transaction's outbox row. So one local transaction is one server
// transaction, with one seq, taken from meta in the same transaction:
// seqs have no gaps even when a local transaction rolls back.
export const TABLE = 'todos_pglite'

export const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value text NOT NULL);
INSERT INTO meta VALUES ('next_seq', '1') ON CONFLICT DO NOTHING;

CREATE TABLE IF NOT EXISTS todos_synced (
  id uuid PRIMARY KEY,
  title text NOT NULL,
  done boolean NOT NULL,
  created_at timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS todos_overlay (
  id uuid PRIMARY KEY,
  title text,
  done boolean,
  created_at timestamptz,
  changed text[] NOT NULL DEFAULT '{}',
  deleted boolean NOT NULL DEFAULT false,
  seq bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS outbox (
  seq bigint PRIMARY KEY,
  local_xid xid8 NOT NULL UNIQUE DEFAULT pg_current_xact_id(),
  mutations jsonb NOT NULL DEFAULT '[]',
  label text NOT NULL DEFAULT '',
  status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'accepted', 'rejected')),
  txid bigint,
  lsn text,
  replayed boolean NOT NULL DEFAULT false,
  answered_at int NOT NULL DEFAULT 0,
  code text,
  message text
);

CREATE OR REPLACE VIEW todos AS
  SELECT coalesce(o.id, s.id) AS id,
    CASE WHEN 'title' = ANY(o.changed) THEN o.title ELSE s.title END AS title,
    CASE WHEN 'done' = ANY(o.changed) THEN o.done ELSE s.done END AS done,
    coalesce(s.created_at, o.created_at) AS created_at,
    o.seq AS pending_seq
  FROM todos_synced s FULL OUTER JOIN todos_overlay o ON o.id = s.id
  WHERE o.id IS NULL OR NOT o.deleted;

-- mutation_id is the to-do a mutation touches.
CREATE OR REPLACE FUNCTION mutation_id(m jsonb) RETURNS uuid LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce(m->'key'->>'id', m->'values'->>'id')::uuid
$$;

-- outbox_add appends m to this local transaction's outbox row (created
-- with the next seq on its first mutation) and returns the seq.
CREATE OR REPLACE FUNCTION outbox_add(m jsonb, what text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE s bigint;
BEGIN
  SELECT seq INTO s FROM outbox WHERE local_xid = pg_current_xact_id();
  IF s IS NULL THEN
    UPDATE meta SET value = (value::bigint + 1)::text WHERE key = 'next_seq' RETURNING value::bigint - 1 INTO s;
    INSERT INTO outbox (seq) VALUES (s);
  END IF;
  UPDATE outbox SET mutations = mutations || jsonb_build_array(m),
    label = CASE WHEN label = '' THEN what ELSE label || ', ' || what END
  WHERE seq = s;
  RETURN s;
END $$;

-- overlay_apply records mutation m of transaction s in the overlay.
CREATE OR REPLACE FUNCTION overlay_apply(m jsonb, s bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  k uuid := mutation_id(m);
  v jsonb := coalesce(m->'values', '{}');
BEGIN
  IF m->>'op' = 'insert' THEN
    INSERT INTO todos_overlay (id, title, done, created_at, changed, deleted, seq)
    VALUES (k, v->>'title', (v->>'done')::boolean, (v->>'created_at')::timestamptz, '{title,done,created_at}', false, s)
    ON CONFLICT (id) DO UPDATE SET title = EXCLUDED.title, done = EXCLUDED.done, created_at = EXCLUDED.created_at,
      changed = EXCLUDED.changed, deleted = false, seq = s;
  ELSIF m->>'op' = 'update' THEN
    INSERT INTO todos_overlay (id, seq) VALUES (k, s) ON CONFLICT (id) DO NOTHING;
    UPDATE todos_overlay SET
      title = CASE WHEN v ? 'title' THEN v->>'title' ELSE title END,
      done = CASE WHEN v ? 'done' THEN (v->>'done')::boolean ELSE done END,
      changed = ARRAY(SELECT DISTINCT c FROM unnest(changed || ARRAY(SELECT jsonb_object_keys(v))) c),
      seq = s
    WHERE id = k;
  ELSE
    INSERT INTO todos_overlay (id, deleted, seq) VALUES (k, true, s)
    ON CONFLICT (id) DO UPDATE SET deleted = true, seq = s;
  END IF;
END $$;

-- overlay_rebuild rolls back the rejected transaction r: the overlay rows
-- it touched are dropped and rebuilt from the transactions still pending.
CREATE OR REPLACE FUNCTION overlay_rebuild(r bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  ids uuid[];
  p record;
BEGIN
  SELECT array_agg(DISTINCT mutation_id(m)) INTO ids FROM outbox, jsonb_array_elements(mutations) m WHERE seq = r;
  DELETE FROM todos_overlay WHERE id = ANY(ids);
  FOR p IN
    SELECT o.seq, e.m FROM outbox o, jsonb_array_elements(o.mutations) WITH ORDINALITY e(m, n)
    WHERE o.status <> 'rejected' AND mutation_id(e.m) = ANY(ids)
    ORDER BY o.seq, e.n
  LOOP
    PERFORM overlay_apply(p.m, p.seq);
  END LOOP;
END $$;

CREATE OR REPLACE FUNCTION todos_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE m jsonb := jsonb_build_object('op', 'insert', 'table', '${TABLE}', 'values', jsonb_build_object(
  'id', NEW.id, 'title', NEW.title, 'done', coalesce(NEW.done, false), 'created_at', coalesce(NEW.created_at, now())));
BEGIN
  PERFORM overlay_apply(m, outbox_add(m, format('add “%s”', NEW.title)));
  RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION todos_update() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  v jsonb := '{}';
  what text;
  m jsonb;
BEGIN
  IF NEW.title IS DISTINCT FROM OLD.title THEN
    v := v || jsonb_build_object('title', NEW.title);
    what := format('rename “%s” to “%s”', OLD.title, NEW.title);
  END IF;
  IF NEW.done IS DISTINCT FROM OLD.done THEN
    v := v || jsonb_build_object('done', NEW.done);
    what := coalesce(what || ', ', '') || format('%s “%s”', CASE WHEN NEW.done THEN 'tick' ELSE 'untick' END, OLD.title);
  END IF;
  IF v = '{}' THEN
    RETURN NEW;
  END IF;
  m := jsonb_build_object('op', 'update', 'table', '${TABLE}', 'key', jsonb_build_object('id', OLD.id), 'values', v);
  PERFORM overlay_apply(m, outbox_add(m, what));
  RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION todos_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE m jsonb := jsonb_build_object('op', 'delete', 'table', '${TABLE}', 'key', jsonb_build_object('id', OLD.id));
BEGIN
  PERFORM overlay_apply(m, outbox_add(m, format('delete “%s”', OLD.title)));
  RETURN OLD;
END $$;

CREATE OR REPLACE TRIGGER todos_insert INSTEAD OF INSERT ON todos FOR EACH ROW EXECUTE FUNCTION todos_insert();
CREATE OR REPLACE TRIGGER todos_update INSTEAD OF UPDATE ON todos FOR EACH ROW EXECUTE FUNCTION todos_update();
CREATE OR REPLACE TRIGGER todos_delete INSTEAD OF DELETE ON todos FOR EACH ROW EXECUTE FUNCTION todos_delete();
`
