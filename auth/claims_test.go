package auth_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/voltsync/volt"
	"github.com/voltsync/volt/auth"
)

// TestClaimParameters covers nested claims, missing claims (NULL), OR with
// a role claim, and typed values of several column types.
func TestClaimParameters(t *testing.T) {
	jc := fullConfig(t)
	e := newEnv(t, &jc, rulesJSON)
	org1 := hs256(t, claims("u1", map[string]any{"org": map[string]any{"id": 1}}))
	orgText := hs256(t, claims("u2", map[string]any{"org": map[string]any{"id": "2"}}))
	noOrg := hs256(t, claims("u3", nil))
	admin := hs256(t, claims("u4", map[string]any{"role": "admin"}))

	wantAccepted(t, e.post(org1, "c1", insert("notes", map[string]any{"id": 1, "org_id": 1})))
	wantForbidden(t, e.post(org1, "c1", insert("notes", map[string]any{"id": 2, "org_id": 2})))
	wantAccepted(t, e.post(orgText, "c2", insert("notes", map[string]any{"id": 2, "org_id": 2})))
	wantForbidden(t, e.post(noOrg, "c3", insert("notes", map[string]any{"id": 3, "org_id": 3})))
	wantForbidden(t, e.post(noOrg, "c3", insert("notes", map[string]any{"id": 3})))
	wantAccepted(t, e.post(admin, "c4", insert("notes", map[string]any{"id": 4, "org_id": 99})))

	// items: a tag in an array column, jsonb equality, timestamptz, numeric, uuid.
	tagged := hs256(t, claims("u5", map[string]any{"tag": "red"}))
	good := map[string]any{"id": 1, "tags": []any{"blue", "red"}, "meta": map[string]any{"ok": true},
		"due": "2024-05-06T07:08:09Z", "amount": "99.5", "code": "00000000-0000-0000-0000-000000000001"}
	wantAccepted(t, e.post(tagged, "c5", insert("items", good)))
	bad := map[string]any{"tags": []any{"blue"}, "meta": map[string]any{"ok": false}, "due": "2019-12-31T23:59:59Z", "amount": 100, "code": nil}
	for col, v := range bad {
		row := map[string]any{}
		for k, gv := range good {
			row[k] = gv
		}
		row["id"], row[col] = 2, v
		if r := e.post(tagged, "c5", insert("items", row)); r.Code != volt.CodeForbidden {
			t.Errorf("items with %s = %v: %+v", col, v, r)
		}
	}
	// The old row fails for a token without the tag.
	wantForbidden(t, e.post(noOrg, "c3", update("items", map[string]any{"id": 1}, map[string]any{"amount": 1})))
	wantAccepted(t, e.post(tagged, "c5", update("items", map[string]any{"id": 1}, map[string]any{"amount": 1})))
}

// TestClaimInjection: a claim is a value, never SQL. A claim written as SQL
// only ever matches rows holding that exact text.
func TestClaimInjection(t *testing.T) {
	jc := fullConfig(t)
	e := newEnv(t, &jc, rulesJSON)
	wantAccepted(t, e.post(hs256(t, claims("victim", nil)), "v", insert("todos", map[string]any{"id": "v1", "owner_id": "victim"})))
	subs := []string{
		"x' OR '1'='1",
		"x' OR true --",
		"victim' --",
		`x"; DROP TABLE todos; --`,
		"$1",
		"$claims.sub",
		"') OR owner_id IS NOT NULL OR ('",
		"victim\x00",
	}
	for i, sub := range subs {
		tok := hs256(t, claims(sub, nil))
		client := fmt.Sprintf("evil-%d", i)
		if sub == "victim\x00" {
			// No client id can be bound to it (client ids hold no NUL),
			// and Postgres text cannot hold NUL: refused as a whole.
			if status, b := e.postRaw(tok, client, del("todos", map[string]any{"id": "v1"})); status != http.StatusForbidden {
				t.Fatalf("sub with NUL: %d %s", status, b)
			}
			continue
		}
		wantForbidden(t, e.post(tok, client, update("todos", map[string]any{"id": "v1"}, map[string]any{"title": "pwned"})))
		wantForbidden(t, e.post(tok, client, del("todos", map[string]any{"id": "v1"})))
		id := fmt.Sprintf("e%d", i)
		wantAccepted(t, e.post(tok, client, insert("todos", map[string]any{"id": id, "owner_id": sub})))
		if got := e.count(`SELECT count(*) FROM todos WHERE id = $1 AND owner_id = $2`, id, sub); got != 1 {
			t.Fatalf("sub %q: its row was not stored with the sub as value", sub)
		}
	}
	// A claim that does not parse as the compared type refuses; it is not SQL.
	tok := hs256(t, claims("u", map[string]any{"org": map[string]any{"id": "1 OR true"}}))
	wantForbidden(t, e.post(tok, "evil-org", insert("notes", map[string]any{"id": 9, "org_id": 1})))
	// An object or array where a scalar is expected is just a value too.
	tok = hs256(t, claims("u", map[string]any{"org": map[string]any{"id": []any{1, "1) OR (true"}}}))
	wantForbidden(t, e.post(tok, "evil-arr", insert("notes", map[string]any{"id": 9, "org_id": 1})))
	if got := e.count(`SELECT count(*) FROM todos WHERE id = 'v1' AND title = ''`); got != 1 {
		t.Fatal("the victim's row changed")
	}
	if got := e.count(`SELECT count(*) FROM notes`); got != 0 {
		t.Fatal("a note was written")
	}
}

// TestNamedMutations: the allow-list, and the claims in the named
// mutation's context, in the transaction of its receipt.
func TestNamedMutations(t *testing.T) {
	jc := fullConfig(t)
	e := newEnv(t, &jc, rulesJSON)
	e.policy.Register(e.h, "complete_all", func(ctx context.Context, tx pgx.Tx, _ json.RawMessage) error {
		_, err := tx.Exec(ctx, `UPDATE todos SET done = true WHERE owner_id = $1`, auth.ClaimsFrom(ctx).Subject())
		return err
	})
	e.policy.Register(e.h, "purge", func(ctx context.Context, tx pgx.Tx, _ json.RawMessage) error {
		_, err := tx.Exec(ctx, `DELETE FROM todos`)
		return err
	})
	alice, bob := hs256(t, claims("alice", nil)), hs256(t, claims("bob", nil))
	wantAccepted(t, e.post(alice, "alice", insert("todos", map[string]any{"id": "a1", "owner_id": "alice"})))
	wantAccepted(t, e.post(bob, "bob", insert("todos", map[string]any{"id": "b1", "owner_id": "bob"})))

	wantAccepted(t, e.post(alice, "alice", volt.Mutation{Name: "complete_all"}))
	wantForbidden(t, e.post(alice, "alice", volt.Mutation{Name: "purge"}))
	// A refused named mutation rolls back the row mutations before it.
	wantForbidden(t, e.post(alice, "alice", update("todos", map[string]any{"id": "a1"}, map[string]any{"title": "t"}), volt.Mutation{Name: "purge"}))
	if got := e.count(`SELECT count(*) FROM todos WHERE done`); got != 1 {
		t.Fatalf("%d done todos, want alice's only", got)
	}
	if got := e.count(`SELECT count(*) FROM todos WHERE title = ''`); got != 2 {
		t.Fatal("purge ran, or its transaction's update stayed")
	}
}

// TestHooksCompose: an application wraps the Policy's Check with its own.
func TestHooksCompose(t *testing.T) {
	jc := fullConfig(t)
	e := newEnv(t, &jc, rulesJSON)
	opts := e.policy.Options(defaultOptions())
	rulesCheck := opts.Check
	opts.Check = func(ctx context.Context, p any, m volt.Mutation, oldRow, newRow map[string]any) error {
		if err := rulesCheck(ctx, p, m, oldRow, newRow); err != nil {
			return err
		}
		if newRow != nil && newRow["title"] == "forbidden word" {
			return rejectQuota()
		}
		return nil
	}
	e.restart(opts)
	alice := hs256(t, claims("alice", nil))
	wantAccepted(t, e.post(alice, "alice", insert("todos", map[string]any{"id": "a1", "owner_id": "alice"})))
	r := e.post(alice, "alice", insert("todos", map[string]any{"id": "a2", "owner_id": "alice", "title": "forbidden word"}))
	if r.Code != "quota" {
		t.Fatalf("app hook: %+v", r)
	}
	wantForbidden(t, e.post(alice, "alice", insert("todos", map[string]any{"id": "a3", "owner_id": "bob"})))
}
