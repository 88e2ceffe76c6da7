package mutations

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/voltsync/volt"
)

// FuzzDecodeRequest feeds request bodies to the decoding and validation
// that ServeHTTP runs before anything touches the database (no database
// needed, so it can run for minutes: go test -fuzz FuzzDecodeRequest
// -fuzztime 2m ./mutations/). A body is either refused with a message
// naming a field, or it yields a request whose client_id and seqs hold what
// the handler relies on, and which encodes and decodes to itself.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"client_id":"c","transactions":[{"seq":1,"mutations":[{"op":"insert","table":"todos","values":{"id":"a","n":12.50,"big":123456789012345678901234567890}}]}]}`,
		`{"client_id":"alice:tab-1","transactions":[{"seq":1},{"seq":2,"mutations":[{"name":"complete_all","args":{"list":"l1"}}]}]}`,
		`{"client_id":"c","transactions":[{"seq":2},{"seq":2}]}`,
		`{"client_id":"c","transactions":[{"seq":1.5}]}`,
		`{"client_id":"c","transactions":[{"seq":9223372036854775807}]}`,
		`{"client_id":"c","transactions":[{"seq":9223372036854775808}]}`,
		`{"client_id":"a\u0000b","transactions":[{"seq":1}]}`,
		`{"client_id":"\ud800","transactions":[{"seq":1}]}`,
		"{\"client_id\":\"\xff\",\"transactions\":[{\"seq\":1}]}",
		`{"client_id":"c","transactions":[{"seq":1,"mutations":[{"op":"update","table":"t","key":{"id":{"x":[1,null,"s"]}},"original":{"a":1e999}}]}]}`,
		`{"client_id":"c","client_id":"d","transactions":[{"seq":1}]}`,
		`{"CLIENT_ID":"c","Transactions":[{"Seq":1}]}`,
		`{"client_id":"c","transactions":[{"seq":1,"mutations":[{"name":"x","args":null}]}]}`,
		`{"client_id":"c","transactions":[{"seq":1}]} {}`,
		`{"client_id":"c","transactions":[{"seq":1}]}   `,
		`{"client_id":"c","transactions":null}`,
		`{"Client_id":"0","trAnsACtions":[{"seq":1,"mutAtions":[{"vAlues":{}}]}]}`,
		`{"client_id":"c","transactions":[{"seq":1,"mutations":[{"name":"n","values":{},"key":{"a":1,"A":2}}]}]}`,
		`[]`, `null`, `""`, `{`, ``, `   `, `{"client_id":1}`,
	} {
		f.Add([]byte(s))
	}
	h := New(nil, Options{})
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeRequest(body)
		if err != nil {
			if req != nil {
				t.Fatalf("%q: a request and an error", body)
			}
			if e := invalidRequest("body", err.Error()); !utf8.ValidString(e.Errors["body"][0]) || strings.ContainsRune(e.Errors["body"][0], 0) {
				t.Fatalf("%q: error message %q is not clean text", body, e.Errors["body"][0])
			}
			return
		}
		field, msg := validateRequest(req)
		if field != "" {
			if msg == "" || (field != "client_id" && field != "transactions") {
				t.Fatalf("%q: refused on %q with %q", body, field, msg)
			}
			return
		}
		_, _ = h.checkLimits(req)
		id := req.ClientID
		if id == "" || len(id) > maxClientIDBytes || !utf8.ValidString(id) || strings.ContainsRune(id, 0) {
			t.Fatalf("%q: accepted client_id %q", body, id)
		}
		if len(req.Transactions) == 0 {
			t.Fatalf("%q: accepted without transactions", body)
		}
		var prev int64
		for _, tx := range req.Transactions {
			if tx.Seq < 1 || tx.Seq <= prev {
				t.Fatalf("%q: accepted seq %d after %d", body, tx.Seq, prev)
			}
			prev = tx.Seq
		}
		// What the handler decoded is what the client meant: it survives
		// a round trip through JSON unchanged.
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("%q: cannot encode the decoded request: %v", body, err)
		}
		req2, err := decodeRequest(again)
		if err != nil {
			t.Fatalf("%q: re-encoded as %s, which does not decode: %v", body, again, err)
		}
		if !reflect.DeepEqual(normalise(req), normalise(req2)) {
			t.Fatalf("%q: decodes to %+v, re-encoded %s decodes to %+v", body, req, again, req2)
		}
	})
}

// normalise compacts named mutations' raw args, the one part of a request
// kept as the client spelled it.
func normalise(req *volt.MutationRequest) *volt.MutationRequest {
	out := *req
	out.Transactions = append([]volt.ClientTransaction(nil), req.Transactions...)
	for i, tx := range out.Transactions {
		ms := append([]volt.Mutation(nil), tx.Mutations...)
		for j, m := range ms {
			if m.Args != nil {
				var b strings.Builder
				_ = json.NewEncoder(&b).Encode(m.Args)
				ms[j].Args = json.RawMessage(strings.TrimSpace(b.String()))
			}
		}
		out.Transactions[i].Mutations = ms
	}
	return &out
}

// TestDecodeStrictKeys: field names that encoding/json would fold into
// another (case, duplicates) are refused, so what volt reads is what a
// proxy inspecting the body reads; unknown fields are still ignored.
func TestDecodeStrictKeys(t *testing.T) {
	for body, want := range map[string]string{
		`{"Client_id":"c","transactions":[{"seq":1}]}`:                                        `unknown field "Client_id"`,
		`{"client_id":"a","client_id":"b","transactions":[{"seq":1}]}`:                        "field client_id is given twice",
		`{"client_id":"c","tranſactions":[{"seq":1}]}`:                                        "case-sensitive",
		`{"client_id":"c","transactions":[{"seq":1,"SEQ":2}]}`:                                `unknown field transactions.0."SEQ"`,
		`{"client_id":"c","transactions":[{"seq":1,"mutations":[{"op":"insert","OP":"x"}]}]}`: `"OP"`,
		`{"client_id":"c","transactions":[{"seq":1,"mutations":[{"values":{"a":1,"a":2}}]}]}`: `column "a" is given twice`,
	} {
		if _, err := decodeRequest([]byte(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", body, err, want)
		}
	}
	req, err := decodeRequest([]byte(`{"client_id":"c","extra":1,"transactions":[{"seq":1,"mutations":[{"name":"n","values":{},"key":{"a":1,"A":2}}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if m := req.Transactions[0].Mutations[0]; m.Values != nil || len(m.Key) != 2 {
		t.Fatalf("%+v", m)
	}
}
