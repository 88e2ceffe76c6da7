package postgres

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/voltsync/volt/internal/pgtest"
)

// pubState reports whether schema.table is in publication pub and its
// pg_class.relreplident.
func pubState(t *testing.T, conn *pgx.Conn, pub, schema, table string) (member bool, replident string) {
	t.Helper()
	err := conn.QueryRow(context.Background(), `
SELECT EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3),
       (SELECT c.relreplident::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $2 AND c.relname = $3)`, pub, schema, table).Scan(&member, &replident)
	if err != nil {
		t.Fatal(err)
	}
	return member, replident
}

func TestPublisherQuotesNames(t *testing.T) {
	url := pgtest.NewDB(t)
	const schema, table, pub = `Sch "ema"`, `My 'Weird' "Table"`, `Pub 'x' "y"`
	pgtest.Exec(t, url,
		`CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize(),
		`CREATE TABLE `+pgx.Identifier{schema, table}.Sanitize()+` (id int PRIMARY KEY)`)
	ctx := context.Background()
	conn := replConnect(t, url)
	p := NewPublisher(conn, pub)
	if created, err := p.Ensure(ctx); err != nil || !created {
		t.Fatalf("Ensure = %v, %v; want created", created, err)
	}
	if created, err := p.Ensure(ctx); err != nil || created {
		t.Fatalf("second Ensure = %v, %v; want existing", created, err)
	}
	for i := 0; i < 2; i++ { // the second call finds everything done
		if err := p.AddTable(ctx, schema, table); err != nil {
			t.Fatalf("AddTable %d: %v", i, err)
		}
		if member, replident := pubState(t, conn, pub, schema, table); !member || replident != "f" {
			t.Fatalf("after AddTable %d: member %v, replica identity %q", i, member, replident)
		}
	}
	if err := p.RemoveTable(ctx, schema, table); err != nil {
		t.Fatal(err)
	}
	if member, _ := pubState(t, conn, pub, schema, table); member {
		t.Fatal("RemoveTable left the table in the publication")
	}
	if err := p.RemoveTable(ctx, schema, table); err != nil {
		t.Fatalf("RemoveTable of a non-member: %v", err)
	}
	if err := p.AddTable(ctx, schema, "missing"); err == nil {
		t.Fatal("AddTable of a missing table succeeded")
	}
}

func TestPublisherEnsureFixesOperations(t *testing.T) {
	url := pgtest.NewDB(t)
	pgtest.Exec(t, url, `CREATE PUBLICATION partial WITH (publish = 'insert')`)
	conn := replConnect(t, url)
	if created, err := NewPublisher(conn, "partial").Ensure(context.Background()); err != nil || created {
		t.Fatalf("Ensure = %v, %v", created, err)
	}
	var ins, upd, del, trunc bool
	if err := conn.QueryRow(context.Background(), `SELECT pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication
		WHERE pubname = 'partial'`).Scan(&ins, &upd, &del, &trunc); err != nil {
		t.Fatal(err)
	}
	if !ins || !upd || !del || !trunc {
		t.Fatalf("publication publishes insert=%v update=%v delete=%v truncate=%v", ins, upd, del, trunc)
	}
}

// Separate connections (as separate server processes would have) ensure
// the publication and add the same tables at the same time.
func TestPublisherConcurrentCalls(t *testing.T) {
	url := pgtest.NewDB(t)
	pgtest.Exec(t, url, `CREATE TABLE a (id int PRIMARY KEY)`, `CREATE TABLE "B" (id int PRIMARY KEY)`)
	const n = 6
	pubs := make([]*Publisher, n)
	for i := range pubs {
		pubs[i] = NewPublisher(replConnect(t, url), "")
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	created := make([]bool, n)
	errs := make([]error, n)
	for i, p := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			created[i], errs[i] = p.Ensure(ctx)
		}()
	}
	wg.Wait()
	creators := 0
	for i := range pubs {
		if errs[i] != nil {
			t.Fatalf("Ensure %d: %v", i, errs[i])
		}
		if created[i] {
			creators++
		}
	}
	if creators != 1 {
		t.Fatalf("%d Ensure calls report having created the publication, want 1", creators)
	}
	for i, p := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.AddTable(ctx, "public", []string{"a", "B"}[i%2])
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("AddTable %d: %v", i, err)
		}
	}
	conn := replConnect(t, url)
	for _, table := range []string{"a", "B"} {
		if member, replident := pubState(t, conn, DefaultPublication, "public", table); !member || replident != "f" {
			t.Errorf("%s: member %v, replica identity %q", table, member, replident)
		}
	}
}

// TestAddTableWaitsForEarlierWriters: a transaction that wrote a table
// before it joined the publication, and commits after, reaches logical
// decoding without those first changes, so AddTable returns only once such
// writers have ended (and snapshots taken afterwards hold them). The table
// already has REPLICA IDENTITY FULL, so nothing else in AddTable waits for
// the writer. Without the wait, TestSubqueryRandom lost a row's move-out.
func TestAddTableWaitsForEarlierWriters(t *testing.T) {
	url := pgtest.NewDB(t)
	pgtest.Exec(t, url,
		`CREATE TABLE straddle (id int PRIMARY KEY, v int)`,
		`ALTER TABLE straddle REPLICA IDENTITY FULL`,
		`INSERT INTO straddle VALUES (1, 1)`)
	ctx := context.Background()
	p := NewPublisher(replConnect(t, url), "straddle_pub")
	if _, err := p.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	writer := replConnect(t, url)
	if _, err := writer.Exec(ctx, `BEGIN; UPDATE straddle SET v = 2 WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.AddTable(ctx, "public", "straddle") }()
	observer := replConnect(t, url)
	for member := false; !member; {
		// The table joins the publication (committed) while the writer
		// is still open.
		if member, _ = pubState(t, observer, "straddle_pub", "public", "straddle"); !member {
			select {
			case err := <-done:
				t.Fatalf("AddTable returned (%v) before the table was in the publication", err)
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	select {
	case err := <-done:
		t.Fatalf("AddTable returned (%v) while a transaction that wrote the table before it was published is open", err)
	default:
	}
	if _, err := writer.Exec(ctx, `UPDATE straddle SET v = 3 WHERE id = 1; COMMIT`); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("AddTable still waits after the writer committed")
	}
	// A writer that starts after the table is published is not waited for.
	if _, err := writer.Exec(ctx, `BEGIN; UPDATE straddle SET v = 4 WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	defer writer.Exec(ctx, `ROLLBACK`)
	if err := p.AddTable(ctx, "public", "straddle"); err != nil {
		t.Fatal(err)
	}
}
