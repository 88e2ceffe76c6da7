package mutations_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/voltsync/volt"
	"github.com/voltsync/volt/mutations"
)

// FuzzHandler posts random bodies: never a 5xx, and a transaction that is
// not accepted changes no data (the tables' checksum stays the same unless
// some result is accepted; receipts grow only by fresh results).
func FuzzHandler(f *testing.F) {
	seeds := []string{
		`{"client_id":"f1","transactions":[{"seq":1,"mutations":[{"op":"insert","table":"todos","values":{"id":"a","title":"x"}}]}]}`,
		`{"client_id":"f2","transactions":[{"seq":1,"mutations":[{"op":"insert","table":"todos","values":{"id":"b","title":"x","n":"NaN"}},{"op":"insert","table":"kids","values":{"id":1,"todo":"zz"}}]}]}`,
		`{"client_id":"f3","transactions":[{"seq":1,"mutations":[{"op":"update","table":"todos","key":{"id":"a"},"values":{"done":true},"original":{"done":false}}]},{"seq":2,"mutations":[{"op":"delete","table":"todos","key":{"id":"a"}}]}]}`,
		`{"client_id":"f4","transactions":[{"seq":1,"mutations":[{"name":"boom","args":{"n":1}}]},{"seq":2,"mutations":[{"op":"insert","table":"kids","values":{"id":2,"todo":"a","tags":[1,[2]]}}]}]}`,
		`{"client_id":"f5","transactions":[{"seq":1,"mutations":[{"op":"insert","table":"todos","values":{"id":"c","title":"t","meta":{"a":[1,2,{"b":null}]},"tags":["x",null,"\"\\"]}}]}]}`,
		`{"client_id":"f6","transactions":[{"seq":3,"mutations":[]}]}`,
		`{"client_id":"f7","transactions":[{"seq":1,"mutations":[{"op":"insert","table":"\"Todos\"","values":{"\u0000":1}}]}]}`,
		`{"client_id":"f8","transactions":[{"seq":1,"mutations":[{"op":"insert","table":"todos","values":{"id":"\u0000","title":"\ud800"}}]}]}`,
		`{"client_id":"f9","transactions":[{"seq":1,"mutations":[{"op":"update","table":"todos","key":{"id":{"x":1}},"values":{"n":1e999}}]}]}`,
		`{"client_id":"f10","transactions":[{"seq":9223372036854775807,"mutations":[]}]}`,
		`{"client_id":"x","transactions":[{"seq":1,"mutations":[{"op":"insert","table":"volt.receipts","values":{"client_id":"x","seq":2,"status":"accepted"}}]}]}`,
		`{}`, `[]`, `null`, `{"client_id":1}`, ``,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	e := newEnv(f, mutations.Options{Checked: map[string]bool{"todos": true}}, todos,
		`CREATE TABLE kids (id int PRIMARY KEY, todo text NOT NULL REFERENCES todos DEFERRABLE, tags int[])`)
	e.h.Register("boom", func(ctx context.Context, tx pgx.Tx, args json.RawMessage) error {
		_, err := tx.Exec(ctx, `INSERT INTO todos (id, title) VALUES ('boom', $1)`, string(args))
		if err == nil {
			_, err = tx.Exec(ctx, `SELECT 1/0`)
		}
		return err
	})
	const sum = `SELECT coalesce(md5(string_agg(x, ',' ORDER BY x)), '') FROM (SELECT t::text x FROM todos t UNION ALL SELECT k::text FROM kids k) s`
	f.Fuzz(func(t *testing.T, body []byte) {
		e.t = t
		before := e.str(sum)
		receipts := e.count(`SELECT count(*) FROM volt.receipts`)
		status, b := e.postRaw(body)
		if status >= 500 {
			t.Fatalf("%d for %q: %s", status, body, b)
		}
		fresh, accepted := 0, false
		if status == http.StatusOK {
			var resp volt.MutationResponse
			if err := json.Unmarshal(b, &resp); err != nil {
				t.Fatalf("200 with %s", b)
			}
			for _, r := range resp.Results {
				accepted = accepted || (r.Status == volt.StatusAccepted && !r.Replayed)
				if !r.Replayed && r.Status != volt.StatusRetry && r.Code != volt.CodeOutOfOrder {
					fresh++
				}
			}
		}
		if !accepted && e.str(sum) != before {
			t.Fatalf("data changed without an accepted transaction: %q → %s", body, b)
		}
		if n := e.count(`SELECT count(*) FROM volt.receipts`); n != receipts+fresh {
			t.Fatalf("receipts %d → %d for %d fresh results: %q → %s", receipts, n, fresh, body, b)
		}
	})
}
