package client

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/voltsync/volt/internal/testseed"
)

// The property test of MoveTracker and Shape: a tiny model of the
// server's semantics for subquery shapes (rows of one table with two
// referencing columns and a flag, a view per subquery) emits the messages
// of §6 and §7 of the protocol notes for random outer changes and random
// moves (with the rows a move-in brings, some of them again) and key
// changes; the Shape's rows must equal the model's rows in the shape after
// every batch, and the conditions the client keeps must be the model's.

// mdlLit is a literal of the where clause: a subquery (col[dep] IN sq_dep)
// or the plain predicate flag, either possibly negated.
type mdlLit struct {
	flag bool
	dep  int
	neg  bool
}

var (
	mdlS0 = mdlLit{dep: 0}
	mdlN0 = mdlLit{dep: 0, neg: true}
	mdlS1 = mdlLit{dep: 1}
	mdlN1 = mdlLit{dep: 1, neg: true}
	mdlF  = mdlLit{flag: true}
	mdlNF = mdlLit{flag: true, neg: true}
)

// mdlWheres are where clauses in DNF.
var mdlWheres = []struct {
	name string
	dnf  [][]mdlLit
}{
	{"x IN sq", [][]mdlLit{{mdlS0}}},
	{"x IN sq OR flag", [][]mdlLit{{mdlS0}, {mdlF}}},
	{"x IN sq AND flag", [][]mdlLit{{mdlS0, mdlF}}},
	{"x NOT IN sq OR flag", [][]mdlLit{{mdlN0}, {mdlF}}},
	{"x IN sq0 OR y IN sq1", [][]mdlLit{{mdlS0}, {mdlS1}}},
	{"x IN sq0 AND (y IN sq1 OR flag)", [][]mdlLit{{mdlS0, mdlS1}, {mdlS0, mdlF}}},
	{"NOT (flag OR y IN sq1)", [][]mdlLit{{mdlNF, mdlN1}}},
	{"(x IN sq0 AND NOT flag) OR (y NOT IN sq1 AND x IN sq0)", [][]mdlLit{{mdlS0, mdlNF}, {mdlN1, mdlS0}}},
}

type mdlRow struct {
	id   int
	col  [2]int // x, y
	flag bool
	n    int
}

// mdlServer is the model: every row of the table, the views, and the
// where clause flattened into positions.
type mdlServer struct {
	dnf   [][]mdlLit
	pos   []mdlLit // by position
	start []int    // first position of each disjunct
	rows  map[int]*mdlRow
	view  [2]map[int]bool
	next  int
	txid  int
}

func newMdlServer(dnf [][]mdlLit) *mdlServer {
	s := &mdlServer{dnf: dnf, rows: map[int]*mdlRow{}, view: [2]map[int]bool{{}, {}}}
	for _, d := range dnf {
		s.start = append(s.start, len(s.pos))
		s.pos = append(s.pos, d...)
	}
	return s
}

func (s *mdlServer) truth(r *mdlRow, l mdlLit) bool {
	if l.flag {
		return r.flag != l.neg
	}
	return s.view[l.dep][r.col[l.dep]] != l.neg
}

func (s *mdlServer) ac(r *mdlRow) []bool {
	ac := make([]bool, len(s.pos))
	for p, l := range s.pos {
		ac[p] = s.truth(r, l)
	}
	return ac
}

func (s *mdlServer) in(r *mdlRow) bool {
	for _, d := range s.dnf {
		all := true
		for _, l := range d {
			all = all && s.truth(r, l)
		}
		if all {
			return true
		}
	}
	return false
}

// slot is the slot value of a subquery position: any slash-free token per
// (dependency, value) will do.
func mdlSlot(dep, v int) string { return fmt.Sprintf("d%dv%d", dep, v) }

func (s *mdlServer) tags(r *mdlRow) []string {
	var tags []string
	for i, d := range s.dnf {
		slots := make([]string, len(s.pos))
		for j, l := range d {
			if l.flag {
				slots[s.start[i]+j] = "1"
			} else {
				slots[s.start[i]+j] = mdlSlot(l.dep, r.col[l.dep])
			}
		}
		tags = append(tags, strings.Join(slots, "/"))
	}
	return tags
}

func mdlKey(id int) string { return fmt.Sprintf(`"public"."t"/"%d"`, id) }

// value is the row as the client holds it (text values, no schema).
func (r *mdlRow) value() Row {
	return Row{"id": strconv.Itoa(r.id), "x": strconv.Itoa(r.col[0]), "y": strconv.Itoa(r.col[1]),
		"flag": strconv.FormatBool(r.flag), "n": strconv.Itoa(r.n)}
}

func (r *mdlRow) wire() map[string]string {
	w := map[string]string{}
	for k, v := range r.value() {
		w[k] = v.(string)
	}
	return w
}

// want is the shape's rows according to the model.
func (s *mdlServer) want() map[string]Row {
	rows := map[string]Row{}
	for _, r := range s.rows {
		if s.in(r) {
			rows[mdlKey(r.id)] = r.value()
		}
	}
	return rows
}

func mdlMsg(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func (s *mdlServer) rowMsg(op string, r *mdlRow, value map[string]string, extra map[string]any) string {
	h := map[string]any{"operation": op, "relation": []string{"public", "t"}}
	h["tags"], h["active_conditions"] = s.tags(r), s.ac(r)
	maps.Copy(h, extra)
	return mdlMsg(map[string]any{"key": mdlKey(r.id), "value": value, "headers": h})
}

func (s *mdlServer) randRow(r *rand.Rand) *mdlRow {
	s.next++
	return &mdlRow{id: s.next, col: [2]int{r.IntN(5), r.IntN(5)}, flag: r.IntN(2) == 0, n: r.IntN(100)}
}

// snapshot is the initial snapshot: the rows in the shape.
func (s *mdlServer) snapshot() []string {
	var msgs []string
	for _, id := range slices.Sorted(maps.Keys(s.rows)) {
		if r := s.rows[id]; s.in(r) {
			msgs = append(msgs, s.rowMsg("insert", r, r.wire(), nil))
		}
	}
	return append(msgs, `{"headers":{"control":"snapshot-end","xmin":"1","xmax":"1","xip_list":[]}}`)
}

// outer makes a random change to the table and returns its messages (§6).
func (s *mdlServer) outer(r *rand.Rand) []string {
	s.txid++
	txids := map[string]any{"txids": []int{s.txid}}
	if len(s.rows) == 0 || r.IntN(4) == 0 {
		row := s.randRow(r)
		s.rows[row.id] = row
		if s.in(row) {
			return []string{s.rowMsg("insert", row, row.wire(), txids)}
		}
		return nil
	}
	ids := slices.Sorted(maps.Keys(s.rows))
	old := s.rows[ids[r.IntN(len(ids))]]
	if r.IntN(5) == 0 {
		delete(s.rows, old.id)
		if s.in(old) {
			return []string{s.rowMsg("delete", old, map[string]string{"id": strconv.Itoa(old.id)}, txids)}
		}
		return nil
	}
	row := *old
	if r.IntN(6) == 0 {
		return s.changeKey(r, old, txids)
	}
	changed := map[string]string{"id": strconv.Itoa(row.id)}
	switch r.IntN(4) {
	case 0:
		row.col[0] = r.IntN(5)
		changed["x"] = strconv.Itoa(row.col[0])
	case 1:
		row.col[1] = r.IntN(5)
		changed["y"] = strconv.Itoa(row.col[1])
	case 2:
		row.flag = !row.flag
		changed["flag"] = strconv.FormatBool(row.flag)
	default:
		row.n = r.IntN(100)
		changed["n"] = strconv.Itoa(row.n)
	}
	s.rows[row.id] = &row
	switch wasIn, isIn := s.in(old), s.in(&row); {
	case wasIn && isIn:
		removed := []string{}
		for _, tag := range s.tags(old) {
			if !slices.Contains(s.tags(&row), tag) {
				removed = append(removed, tag)
			}
		}
		txids["removed_tags"] = removed
		return []string{s.rowMsg("update", &row, changed, txids)}
	case wasIn:
		return []string{s.rowMsg("delete", old, map[string]string{"id": strconv.Itoa(row.id)}, txids)}
	case isIn:
		return []string{s.rowMsg("insert", &row, row.wire(), txids)}
	}
	return nil
}

// changeKey updates the primary key of old, and maybe its x: a delete of
// the old key with key_change_to and an insert of the new one with
// key_change_from, each when that side is in the shape (§6).
func (s *mdlServer) changeKey(r *rand.Rand, old *mdlRow, txids map[string]any) []string {
	row := *old
	s.next++
	row.id = s.next
	if r.IntN(2) == 0 {
		row.col[0] = r.IntN(5)
	}
	delete(s.rows, old.id)
	s.rows[row.id] = &row
	var msgs []string
	if s.in(old) {
		h := maps.Clone(txids)
		if s.in(&row) {
			h["key_change_to"] = mdlKey(row.id)
		}
		msgs = append(msgs, s.rowMsg("delete", old, map[string]string{"id": strconv.Itoa(old.id)}, h))
	}
	if s.in(&row) {
		h := maps.Clone(txids)
		if s.in(old) {
			h["key_change_from"] = mdlKey(old.id)
		}
		msgs = append(msgs, s.rowMsg("insert", &row, row.wire(), h))
	}
	return msgs
}

// move flips value v of dependency dep in its view and returns the
// messages (§7.3, §7.4): a move-out event, or a move-in event followed by
// the rows it brings and a snapshot-end; sometimes a row already in the
// shape comes again (a duplicate a client must take as an upsert).
func (s *mdlServer) move(r *rand.Rand, dep, v int) []string {
	before := map[int]bool{}
	for id, row := range s.rows {
		before[id] = s.in(row)
	}
	neg := false
	var patterns []MovePattern
	for p, l := range s.pos {
		if !l.flag && l.dep == dep {
			neg = l.neg
			patterns = append(patterns, MovePattern{Pos: p, Value: mdlSlot(dep, v)})
		}
	}
	if s.view[dep][v] {
		delete(s.view[dep], v)
	} else {
		s.view[dep][v] = true
	}
	s.txid++
	kind := MoveOut
	if s.view[dep][v] != neg {
		kind = MoveIn
	}
	msgs := []string{mdlMsg(map[string]any{"headers": map[string]any{
		"event": kind, "patterns": patterns, "txids": []int{s.txid}}})}
	if kind == MoveOut {
		return msgs
	}
	rows := 0
	for _, id := range slices.Sorted(maps.Keys(s.rows)) {
		row := s.rows[id]
		dup := before[id] && row.col[dep] == v && r.IntN(4) == 0
		if s.in(row) && (!before[id] || dup) {
			msgs = append(msgs, s.rowMsg("insert", row, row.wire(), map[string]any{"is_move_in": true}))
			rows++
		}
	}
	if rows > 0 {
		msgs = append(msgs, `{"headers":{"control":"snapshot-end","xmin":"5","xmax":"5","xip_list":[]}}`)
	}
	return msgs
}

// deps returns the dependencies the where clause uses.
func (s *mdlServer) deps() []int {
	var deps []int
	for _, l := range s.pos {
		if !l.flag && !slices.Contains(deps, l.dep) {
			deps = append(deps, l.dep)
		}
	}
	return deps
}

func TestSubqueryMatchesModel(t *testing.T) {
	seed := testseed.Seed(t)
	for wi, w := range mdlWheres {
		t.Run(w.name, func(t *testing.T) {
			movedOut, movedIn := 0, 0
			for run := range 20 {
				r := rand.New(rand.NewPCG(seed, uint64(wi*1000+run)))
				out, in := mdlRun(t, r, w.dnf, fmt.Sprintf("run %d", run))
				movedOut, movedIn = movedOut+out, movedIn+in
			}
			// The runs did what they are here for.
			if movedOut < 20 || movedIn < 20 {
				t.Fatalf("%d rows moved out and %d moved in over 20 runs: too few to test anything", movedOut, movedIn)
			}
		})
	}
}

// mdlRun runs one random case and returns how many rows moved out and in.
func mdlRun(t *testing.T, r *rand.Rand, dnf [][]mdlLit, run string) (movedOut, movedIn int) {
	s := newMdlServer(dnf)
	for range r.IntN(8) {
		row := s.randRow(r)
		s.rows[row.id] = row
	}
	for _, d := range s.deps() {
		for v := range 5 {
			if r.IntN(2) == 0 {
				s.view[d][v] = true
			}
		}
	}
	sh := newTestShape(t)
	sh.Subscribe(func(sc ShapeChange) {
		for _, c := range sc.Changes {
			if c.MovedOut {
				movedOut++
			}
			if c.IsMoveIn {
				movedIn++
			}
		}
	})
	var log []string // the batches so far, for the failure message
	feed := func(msgs []string) {
		body := "[" + strings.Join(append(msgs, `{"headers":{"control":"up-to-date"}}`), ",") + "]"
		log = append(log, body)
		evs, err := decodeBody([]byte(body), nil)
		if err != nil {
			t.Fatalf("%s: %v", run, err)
		}
		sh.apply(Batch{Events: evs})
		if got, want := rowsMap(sh), s.want(); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s, batch %d: rows\n%v\nwant\n%v\nbatches:\n%s", run, len(log)-1, got, want, strings.Join(log, "\n"))
		}
		for key, tr := range sh.moves.rows {
			id, _ := strconv.Atoi(key[len(`"public"."t"/"`) : len(key)-1])
			if want := s.ac(s.rows[id]); tr.ac != nil && !reflect.DeepEqual(tr.ac, want) {
				t.Fatalf("%s, batch %d: %s has conditions %v, want %v\nbatches:\n%s", run, len(log)-1, key, tr.ac, want, strings.Join(log, "\n"))
			}
		}
		if len(sh.moves.rows) != sh.Len() {
			t.Fatalf("%s, batch %d: the tracker holds %d rows, the shape %d", run, len(log)-1, len(sh.moves.rows), sh.Len())
		}
	}
	feed(s.snapshot())
	deps := s.deps()
	for range 150 {
		if r.IntN(40) == 0 {
			sh.apply(Batch{Events: []Event{&MustRefetch{Handle: "h2"}}})
			log = append(log, "must-refetch")
			feed(s.snapshot())
			continue
		}
		// One batch: a few outer changes and moves, in one order.
		var msgs []string
		for range 1 + r.IntN(3) {
			if r.IntN(2) == 0 {
				msgs = append(msgs, s.outer(r)...)
			} else {
				msgs = append(msgs, s.move(r, deps[r.IntN(len(deps))], r.IntN(5))...)
			}
		}
		feed(msgs)
	}
	return movedOut, movedIn
}
