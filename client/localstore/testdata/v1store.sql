PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE _volt_meta (k TEXT PRIMARY KEY, v ANY) STRICT;
INSERT INTO _volt_meta VALUES('client_id','ls-v1fixture');
INSERT INTO _volt_meta VALUES('next_seq',3);
CREATE TABLE _volt_flags (id INTEGER PRIMARY KEY CHECK (id = 1), ltx INTEGER NOT NULL, syncing INTEGER NOT NULL);
INSERT INTO _volt_flags VALUES(1,5,0);
CREATE TABLE _volt_shapes (tbl TEXT PRIMARY KEY, source TEXT NOT NULL, handle TEXT NOT NULL DEFAULT '',
		"offset" TEXT NOT NULL DEFAULT '-1', schema TEXT NOT NULL, lsn INTEGER NOT NULL DEFAULT 0);
INSERT INTO _volt_shapes VALUES('todos','todos','h1','0_0','{"done":{"type":"bool"},"id":{"type":"text","pk_index":0,"not_null":true},"meta":{"type":"jsonb"},"title":{"type":"text"}}',10);
INSERT INTO _volt_shapes VALUES('notes','public.notes','','-1','{"body":{"type":"text"},"n":{"type":"int8","pk_index":0,"not_null":true}}',0);
CREATE TABLE _volt_outbox (id INTEGER PRIMARY KEY, ltx INTEGER NOT NULL, tbl TEXT NOT NULL,
		op TEXT NOT NULL, key TEXT NOT NULL, vals TEXT);
INSERT INTO _volt_outbox VALUES(1,1,'todos','insert','{"id":"c"}','{"id":"c","done":false,"meta":{"x":1},"title":"local c"}');
INSERT INTO _volt_outbox VALUES(2,1,'todos','update','{"id":"a"}','{"done":true}');
INSERT INTO _volt_outbox VALUES(3,2,'notes','insert','{"n":7}','{"n":7,"body":"seven"}');
INSERT INTO _volt_outbox VALUES(4,3,'todos','delete','{"id":"b"}',NULL);
INSERT INTO _volt_outbox VALUES(5,4,'todos','update','{"id":"a"}','{"title":"mine"}');
CREATE TABLE _volt_txns (ltx INTEGER PRIMARY KEY, seq INTEGER UNIQUE, state TEXT NOT NULL DEFAULT 'pending',
		txid INTEGER, lsn INTEGER NOT NULL DEFAULT 0);
INSERT INTO _volt_txns VALUES(1,1,'accepted',100,20);
INSERT INTO _volt_txns VALUES(2,2,'pending',NULL,0);
INSERT INTO _volt_txns VALUES(3,NULL,'pending',NULL,0);
INSERT INTO _volt_txns VALUES(4,NULL,'pending',NULL,0);
CREATE TABLE _volt_echo (tbl TEXT NOT NULL, txid INTEGER NOT NULL, PRIMARY KEY (tbl, txid)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS "todos_synced" ("id" TEXT NOT NULL, "done" INTEGER, "meta" TEXT, "title" TEXT, PRIMARY KEY ("id"));
INSERT INTO todos_synced VALUES('a',0,NULL,'server a');
INSERT INTO todos_synced VALUES('b',1,NULL,'server b');
CREATE TABLE IF NOT EXISTS "todos_local" ("id" TEXT NOT NULL, "done" INTEGER, "meta" TEXT, "title" TEXT, changed_columns TEXT NOT NULL DEFAULT ',',
		is_deleted INTEGER NOT NULL DEFAULT 0, write_id INTEGER NOT NULL, PRIMARY KEY ("id"));
INSERT INTO todos_local VALUES('c',0,'{"x":1}','local c',',id,done,meta,title,',0,1);
INSERT INTO todos_local VALUES('a',1,NULL,'mine',',done,title,',0,4);
INSERT INTO todos_local VALUES('b',NULL,NULL,NULL,',',1,3);
CREATE TABLE IF NOT EXISTS "notes_synced" ("n" INTEGER NOT NULL, "body" TEXT, PRIMARY KEY ("n"));
CREATE TABLE IF NOT EXISTS "notes_local" ("n" INTEGER NOT NULL, "body" TEXT, changed_columns TEXT NOT NULL DEFAULT ',',
		is_deleted INTEGER NOT NULL DEFAULT 0, write_id INTEGER NOT NULL, PRIMARY KEY ("n"));
INSERT INTO notes_local VALUES(7,'seven',',n,body,',0,2);
CREATE INDEX _volt_outbox_ltx ON _volt_outbox(ltx);
CREATE INDEX _volt_outbox_key ON _volt_outbox(tbl, key);
CREATE TRIGGER _volt_outbox_txn AFTER INSERT ON _volt_outbox BEGIN
		INSERT OR IGNORE INTO _volt_txns(ltx) VALUES (NEW.ltx); END;
CREATE TRIGGER "todos_synced_ro_insert" BEFORE INSERT ON "todos_synced" WHEN (SELECT syncing FROM _volt_flags) = 0
		BEGIN SELECT RAISE(ABORT, 'todos_synced is read-only: write to todos'); END;
CREATE TRIGGER "todos_synced_ro_update" BEFORE UPDATE ON "todos_synced" WHEN (SELECT syncing FROM _volt_flags) = 0
		BEGIN SELECT RAISE(ABORT, 'todos_synced is read-only: write to todos'); END;
CREATE TRIGGER "todos_synced_ro_delete" BEFORE DELETE ON "todos_synced" WHEN (SELECT syncing FROM _volt_flags) = 0
		BEGIN SELECT RAISE(ABORT, 'todos_synced is read-only: write to todos'); END;
CREATE VIEW "todos" AS
SELECT s."id", CASE WHEN instr(l.changed_columns, ',done,') > 0 THEN l."done" ELSE s."done" END AS "done", CASE WHEN instr(l.changed_columns, ',meta,') > 0 THEN l."meta" ELSE s."meta" END AS "meta", CASE WHEN instr(l.changed_columns, ',title,') > 0 THEN l."title" ELSE s."title" END AS "title" FROM "todos_synced" s LEFT JOIN "todos_local" l ON s."id" = l."id" WHERE l.is_deleted IS NOT 1
UNION ALL
SELECT l."id", l."done", l."meta", l."title" FROM "todos_local" l WHERE l.is_deleted = 0 AND NOT EXISTS (SELECT 1 FROM "todos_synced" s WHERE s."id" = l."id");
CREATE TRIGGER "todos_insert" INSTEAD OF INSERT ON "todos" BEGIN
SELECT RAISE(ABORT, 'NOT NULL constraint failed: todos primary key') WHERE NEW."id" IS NULL;
SELECT RAISE(ABORT, 'UNIQUE constraint failed: todos primary key') WHERE EXISTS (SELECT 1 FROM "todos" v WHERE v."id" = NEW."id");
INSERT INTO "todos_local"("id", "done", "meta", "title", changed_columns, is_deleted, write_id) VALUES (NEW."id", NEW."done", NEW."meta", NEW."title", ',id,done,meta,title,', 0, (SELECT ltx FROM _volt_flags))
  ON CONFLICT DO UPDATE SET "id" = excluded."id", "done" = excluded."done", "meta" = excluded."meta", "title" = excluded."title", changed_columns = excluded.changed_columns, is_deleted = 0, write_id = excluded.write_id;
INSERT INTO _volt_outbox(ltx, tbl, op, key, vals) SELECT (SELECT ltx FROM _volt_flags), 'todos', 'insert', json_object('id', NEW."id"), json_object('id', NEW."id", 'done', CASE WHEN NEW."done" IS NULL THEN NULL WHEN NEW."done" THEN json('true') ELSE json('false') END, 'meta', json(NEW."meta"), 'title', NEW."title");
END;
CREATE TRIGGER "todos_update" INSTEAD OF UPDATE ON "todos" BEGIN
SELECT RAISE(ABORT, 'cannot change the primary key of todos') WHERE NEW."id" IS NOT OLD."id";
INSERT INTO "todos_local"("id", "done", "meta", "title", changed_columns, is_deleted, write_id) SELECT NEW."id", NEW."done", NEW."meta", NEW."title", ',' || CASE WHEN NEW."done" IS NOT OLD."done" THEN 'done,' ELSE '' END || CASE WHEN NEW."meta" IS NOT OLD."meta" THEN 'meta,' ELSE '' END || CASE WHEN NEW."title" IS NOT OLD."title" THEN 'title,' ELSE '' END, 0, (SELECT ltx FROM _volt_flags) WHERE NEW."done" IS NOT OLD."done" OR NEW."meta" IS NOT OLD."meta" OR NEW."title" IS NOT OLD."title"
  ON CONFLICT DO UPDATE SET "done" = excluded."done", "meta" = excluded."meta", "title" = excluded."title", changed_columns = changed_columns || CASE WHEN instr(excluded.changed_columns, ',done,') > 0 AND instr(changed_columns, ',done,') = 0 THEN 'done,' ELSE '' END || CASE WHEN instr(excluded.changed_columns, ',meta,') > 0 AND instr(changed_columns, ',meta,') = 0 THEN 'meta,' ELSE '' END || CASE WHEN instr(excluded.changed_columns, ',title,') > 0 AND instr(changed_columns, ',title,') = 0 THEN 'title,' ELSE '' END, write_id = excluded.write_id;
INSERT INTO _volt_outbox(ltx, tbl, op, key, vals) SELECT (SELECT ltx FROM _volt_flags), 'todos', 'update', json_object('id', OLD."id"), json_remove(json_object('done', CASE WHEN NEW."done" IS NULL THEN NULL WHEN NEW."done" THEN json('true') ELSE json('false') END, 'meta', json(NEW."meta"), 'title', NEW."title"), CASE WHEN NEW."done" IS OLD."done" THEN '$."done"' ELSE '$.__volt_none__' END, CASE WHEN NEW."meta" IS OLD."meta" THEN '$."meta"' ELSE '$.__volt_none__' END, CASE WHEN NEW."title" IS OLD."title" THEN '$."title"' ELSE '$.__volt_none__' END) WHERE NEW."done" IS NOT OLD."done" OR NEW."meta" IS NOT OLD."meta" OR NEW."title" IS NOT OLD."title";
END;
CREATE TRIGGER "todos_delete" INSTEAD OF DELETE ON "todos" BEGIN
INSERT INTO "todos_local"("id", is_deleted, write_id) VALUES (OLD."id", 1, (SELECT ltx FROM _volt_flags))
  ON CONFLICT DO UPDATE SET is_deleted = 1, write_id = excluded.write_id;
INSERT INTO _volt_outbox(ltx, tbl, op, key, vals) SELECT (SELECT ltx FROM _volt_flags), 'todos', 'delete', json_object('id', OLD."id"), NULL;
END;
CREATE TRIGGER "notes_synced_ro_insert" BEFORE INSERT ON "notes_synced" WHEN (SELECT syncing FROM _volt_flags) = 0
		BEGIN SELECT RAISE(ABORT, 'notes_synced is read-only: write to notes'); END;
CREATE TRIGGER "notes_synced_ro_update" BEFORE UPDATE ON "notes_synced" WHEN (SELECT syncing FROM _volt_flags) = 0
		BEGIN SELECT RAISE(ABORT, 'notes_synced is read-only: write to notes'); END;
CREATE TRIGGER "notes_synced_ro_delete" BEFORE DELETE ON "notes_synced" WHEN (SELECT syncing FROM _volt_flags) = 0
		BEGIN SELECT RAISE(ABORT, 'notes_synced is read-only: write to notes'); END;
CREATE VIEW "notes" AS
SELECT s."n", CASE WHEN instr(l.changed_columns, ',body,') > 0 THEN l."body" ELSE s."body" END AS "body" FROM "notes_synced" s LEFT JOIN "notes_local" l ON s."n" = l."n" WHERE l.is_deleted IS NOT 1
UNION ALL
SELECT l."n", l."body" FROM "notes_local" l WHERE l.is_deleted = 0 AND NOT EXISTS (SELECT 1 FROM "notes_synced" s WHERE s."n" = l."n");
CREATE TRIGGER "notes_insert" INSTEAD OF INSERT ON "notes" BEGIN
SELECT RAISE(ABORT, 'NOT NULL constraint failed: notes primary key') WHERE NEW."n" IS NULL;
SELECT RAISE(ABORT, 'UNIQUE constraint failed: notes primary key') WHERE EXISTS (SELECT 1 FROM "notes" v WHERE v."n" = NEW."n");
INSERT INTO "notes_local"("n", "body", changed_columns, is_deleted, write_id) VALUES (NEW."n", NEW."body", ',n,body,', 0, (SELECT ltx FROM _volt_flags))
  ON CONFLICT DO UPDATE SET "n" = excluded."n", "body" = excluded."body", changed_columns = excluded.changed_columns, is_deleted = 0, write_id = excluded.write_id;
INSERT INTO _volt_outbox(ltx, tbl, op, key, vals) SELECT (SELECT ltx FROM _volt_flags), 'notes', 'insert', json_object('n', NEW."n"), json_object('n', NEW."n", 'body', NEW."body");
END;
CREATE TRIGGER "notes_update" INSTEAD OF UPDATE ON "notes" BEGIN
SELECT RAISE(ABORT, 'cannot change the primary key of notes') WHERE NEW."n" IS NOT OLD."n";
INSERT INTO "notes_local"("n", "body", changed_columns, is_deleted, write_id) SELECT NEW."n", NEW."body", ',' || CASE WHEN NEW."body" IS NOT OLD."body" THEN 'body,' ELSE '' END, 0, (SELECT ltx FROM _volt_flags) WHERE NEW."body" IS NOT OLD."body"
  ON CONFLICT DO UPDATE SET "body" = excluded."body", changed_columns = changed_columns || CASE WHEN instr(excluded.changed_columns, ',body,') > 0 AND instr(changed_columns, ',body,') = 0 THEN 'body,' ELSE '' END, write_id = excluded.write_id;
INSERT INTO _volt_outbox(ltx, tbl, op, key, vals) SELECT (SELECT ltx FROM _volt_flags), 'notes', 'update', json_object('n', OLD."n"), json_remove(json_object('body', NEW."body"), CASE WHEN NEW."body" IS OLD."body" THEN '$."body"' ELSE '$.__volt_none__' END) WHERE NEW."body" IS NOT OLD."body";
END;
CREATE TRIGGER "notes_delete" INSTEAD OF DELETE ON "notes" BEGIN
INSERT INTO "notes_local"("n", is_deleted, write_id) VALUES (OLD."n", 1, (SELECT ltx FROM _volt_flags))
  ON CONFLICT DO UPDATE SET is_deleted = 1, write_id = excluded.write_id;
INSERT INTO _volt_outbox(ltx, tbl, op, key, vals) SELECT (SELECT ltx FROM _volt_flags), 'notes', 'delete', json_object('n', OLD."n"), NULL;
END;
COMMIT;
