package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/client"
)

// tokServer is a volt stand-in that accepts one bearer token at a time.
type tokServer struct {
	*httptest.Server
	mu     sync.Mutex
	valid  string
	seen   []string // the Authorization header of every request
	shapes int
	writes int
}

func newTokServer(t *testing.T, valid string) *tokServer {
	s := &tokServer{valid: valid}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *tokServer) setValid(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.valid = tok
}

func (s *tokServer) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

func (s *tokServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	auth := r.Header.Get("Authorization")
	s.seen = append(s.seen, auth)
	ok := auth == "Bearer "+s.valid
	s.mu.Unlock()
	if !ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"message":"invalid token"}`)
		return
	}
	if r.Method == http.MethodPost {
		var req volt.MutationRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		var resp volt.MutationResponse
		for _, tx := range req.Transactions {
			resp.Results = append(resp.Results, volt.MutationResult{Seq: tx.Seq, Status: volt.StatusAccepted, Txid: 1})
		}
		_ = json.NewEncoder(w).Encode(resp)
		return
	}
	if r.URL.Query().Get("live") != "" {
		<-r.Context().Done()
		return
	}
	w.Header().Set("electric-handle", "h1")
	w.Header().Set("electric-offset", "0_0")
	w.Header().Set("electric-schema", `{}`)
	fmt.Fprint(w, `[{"headers":{"control":"up-to-date","global_last_seen_lsn":"1"}}]`)
}

// tokSequence is a token source's fetch that hands out tokens in order.
func tokSequence(toks ...string) (fetch func(context.Context) (string, time.Time, error), fetches func() int) {
	var mu sync.Mutex
	n := 0
	fetch = func(context.Context) (string, time.Time, error) {
		mu.Lock()
		defer mu.Unlock()
		if n >= len(toks) {
			return "", time.Time{}, errors.New("no more tokens")
		}
		n++
		return toks[n-1], time.Time{}, nil
	}
	return fetch, func() int { mu.Lock(); defer mu.Unlock(); return n }
}

func tokRunShape(t *testing.T, c *client.Client) error {
	t.Helper()
	sh, err := c.Shape(client.ShapeDef{Table: "items"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- sh.Run(ctx) }()
	werr := sh.WaitUpToDate(ctx)
	cancel()
	if err := <-done; werr == nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	return werr
}

func TestTokenRefreshOn401(t *testing.T) {
	srv := newTokServer(t, "t2")
	fetch, fetches := tokSequence("t1", "t2", "t3")
	c, err := client.New(srv.URL, client.WithTokenSource(client.NewRefreshingToken(fetch)))
	if err != nil {
		t.Fatal(err)
	}
	// The shape's first request carries t1, refused; the token is fetched
	// again and the request sent once more.
	if err := tokRunShape(t, c); err != nil {
		t.Fatal(err)
	}
	if got := srv.requests(); fetches() != 2 || len(got) < 2 || got[0] != "Bearer t1" || got[1] != "Bearer t2" {
		t.Fatalf("%d fetches, requests %q", fetches(), got)
	}
	// The server rotates its token: the Writer refreshes the same way.
	srv.setValid("t3")
	w, err := c.Writer("tok")
	if err != nil {
		t.Fatal(err)
	}
	res, err := w.Write(context.Background(), []volt.Mutation{{Op: volt.OpInsert, Table: "items", Values: map[string]any{"id": 1}}})
	if err != nil || res.Status != volt.StatusAccepted {
		t.Fatalf("Write: %+v, %v", res, err)
	}
	got := srv.requests()
	if fetches() != 3 || got[len(got)-2] != "Bearer t2" || got[len(got)-1] != "Bearer t3" {
		t.Fatalf("%d fetches, requests %q", fetches(), got)
	}
}

func TestTokenRefusedAfterRefresh(t *testing.T) {
	t.Run("refreshing", func(t *testing.T) {
		srv := newTokServer(t, "never")
		fetch, fetches := tokSequence("t1", "t2", "t3", "t4")
		c, _ := client.New(srv.URL, client.WithTokenSource(client.NewRefreshingToken(fetch)))
		err := tokRunShape(t, c)
		var herr *client.Error
		if !errors.As(err, &herr) || herr.StatusCode != http.StatusUnauthorized || !errors.Is(err, client.ErrUnauthorized) {
			t.Fatalf("shape: %v, want the 401", err)
		}
		if got := srv.requests(); fetches() != 2 || len(got) != 2 {
			t.Fatalf("%d fetches, requests %q: want one refresh, no more", fetches(), got)
		}
		w, _ := c.Writer("tok")
		_, err = w.Write(context.Background(), []volt.Mutation{{Op: volt.OpInsert, Table: "items", Values: map[string]any{"id": 1}}})
		var uerr *client.UnauthorizedError
		if !errors.As(err, &uerr) || len(uerr.Pending) != 1 {
			t.Fatalf("Write: %v, want an *UnauthorizedError with the transaction pending", err)
		}
		if got := srv.requests(); fetches() != 3 || len(got) != 4 || got[2] != "Bearer t2" || got[3] != "Bearer t3" {
			t.Fatalf("%d fetches, requests %q: want one refresh, no more", fetches(), got)
		}
	})
	t.Run("static", func(t *testing.T) {
		srv := newTokServer(t, "never")
		c, _ := client.New(srv.URL, client.WithToken("fixed"))
		if err := tokRunShape(t, c); !errors.Is(err, client.ErrUnauthorized) {
			t.Fatalf("shape: %v, want the 401", err)
		}
		if got := srv.requests(); len(got) != 1 || got[0] != "Bearer fixed" {
			t.Fatalf("requests %q, want one: a static token is not refreshed", got)
		}
	})
}

// TestRejectionIsAnError: Write, WriteAndAwait and Optimistic.Apply report
// a rejected transaction the same way: its result and a *RejectedError
// holding it.
func TestRejectionIsAnError(t *testing.T) {
	srv := exampleWriteServer()
	defer srv.Close()
	c, err := client.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.Writer("rejections")
	if err != nil {
		t.Fatal(err)
	}
	taken := []volt.Mutation{{Op: volt.OpInsert, Table: "todos", Values: map[string]any{"id": "x", "title": "taken"}}}
	ctx := context.Background()
	check := func(what string, res volt.MutationResult, err error) {
		t.Helper()
		var rej *client.RejectedError
		if !errors.As(err, &rej) || !errors.Is(err, client.ErrRejected) {
			t.Fatalf("%s: %v, want a *RejectedError", what, err)
		}
		if rej.Result.Status != volt.StatusRejected || rej.Result.Code != volt.CodeConstraint || rej.Result.Seq != res.Seq || res.Code != rej.Result.Code {
			t.Fatalf("%s: result %+v, in the error %+v", what, res, rej.Result)
		}
	}
	res, err := w.Write(ctx, taken)
	check("Write", res, err)
	res, err = w.WriteAndAwait(ctx, taken)
	check("WriteAndAwait", res, err)
	// Accepted: no error.
	if res, err := w.Write(ctx, []volt.Mutation{{Op: volt.OpInsert, Table: "todos", Values: map[string]any{"id": "y", "title": "free"}}}); err != nil || res.Status != volt.StatusAccepted {
		t.Fatalf("accepted write: %+v, %v", res, err)
	}
	// WriteBatch keeps rejections among its results.
	results, err := w.WriteBatch(ctx, [][]volt.Mutation{taken})
	if err != nil || len(results) != 1 || results[0].Status != volt.StatusRejected {
		t.Fatalf("WriteBatch: %+v, %v", results, err)
	}
}

func TestRefreshingTokenCachesUntilExpiry(t *testing.T) {
	n := 0
	rt := client.NewRefreshingToken(func(context.Context) (string, time.Time, error) {
		n++
		exp := time.Now().Add(time.Hour)
		if n == 1 {
			exp = time.Now().Add(5 * time.Second) // within the 10 s margin: stale at once
		}
		return fmt.Sprint("t", n), exp, nil
	})
	ctx := context.Background()
	var got []string
	for range 3 {
		tok, err := rt.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, tok)
	}
	rt.Invalidate("t1") // an old token: ignored
	tok, _ := rt.Token(ctx)
	got = append(got, tok)
	rt.Invalidate("t2")
	tok, _ = rt.Token(ctx)
	got = append(got, tok)
	if want := []string{"t1", "t2", "t2", "t2", "t3"}; fmt.Sprint(got) != fmt.Sprint(want) || n != 3 {
		t.Fatalf("tokens %v after %d fetches, want %v after 3", got, n, want)
	}
}
