package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/voltsync/volt/client"
	"github.com/voltsync/volt/internal/pgtest"
	"github.com/voltsync/volt/internal/testseed"
)

// TestSubqueryRandom proves subquery shapes differentially (issue 16 item
// 1): per round a random schema of 2 or 3 tables (outer o, inner m,
// nested inner n; columns int4, int8, text, bool, some NOT NULL, a
// composite primary key sometimes), many random where clauses over it
// (IN, NOT IN, row comparisons, $n params, AND/OR/NOT, plain predicates,
// subqueries nested 2 levels), each followed by a client.Shape on one
// volt, all at once, while random transactions change every table (several
// statements per transaction, bursts from two connections at once, racing
// the shapes' creation and their move-ins). After every step each shape's
// rows must equal Postgres' answer to its clause.
//
// Refetches are counted and attributed (the removal reason volt logs for
// the handle): a case whose clause cannot meet one of the fallbacks that
// shapecache/subquery.go documents (its top-level NOT IN subqueries, if
// any, select a NOT NULL column of one column from a set that keeps
// anchor rows the mutations never touch, so it never empties, gains its
// first value or holds a NULL) must see none, except a dependency change
// that raced the shape's snapshot (a documented fallback, counted apart).
// The other cases may refetch, for a documented reason only.
//
// VOLT_SQ_RANDOM_CASES sets the number of cases (default 240, 60 per
// schema), VOLT_SQ_RANDOM_STEPS the steps per schema (default 12),
// VOLT_SEED the seed.
func TestSubqueryRandom(t *testing.T) {
	cases := sqrandEnvInt(t, "VOLT_SQ_RANDOM_CASES", 240)
	steps := sqrandEnvInt(t, "VOLT_SQ_RANDOM_STEPS", 12)
	const perSchema = 60
	seed := testseed.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	db := pgtest.NewDB(t)
	v := startVolt(t, db, sqFlag, "VOLT_LONG_POLL_TIMEOUT=5s", "VOLT_MAX_SHAPES_PER_PRINCIPAL=0", "VOLT_MAX_SHAPES=0")
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * perSchema}}
	defer hc.CloseIdleConnections()
	c, err := client.New(v.URL, client.WithHTTPClient(hc), client.WithBackoff(10*time.Millisecond, 200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var total sqrandStats
	for round := 0; cases > 0; round++ {
		n := min(cases, perSchema)
		cases -= n
		st := sqrandRound(t, v, c, db, rng, seed, round, n, steps)
		total.add(st)
	}
	t.Logf("%d cases, %d steps, %s; the slowest step took %s to reach every shape", total.cases, total.steps,
		time.Since(start).Round(time.Millisecond), total.slowest.Round(time.Millisecond))
	for _, cl := range sqrandClasses {
		s := total.byClass[cl]
		t.Logf("class %-9s %4d cases: %5d move-ins, %5d move-outs, %3d refetches (%d raced the snapshot) %v",
			cl, s.cases, s.moveIns, s.moveOuts, s.refetches, s.raced, s.reasons)
	}
	if total.moveIns() == 0 || total.moveOuts() == 0 {
		t.Errorf("the run moved too little to test anything: %d move-ins, %d move-outs", total.moveIns(), total.moveOuts())
	}
}

func sqrandEnvInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

// The classes of cases: plain has no top-level NOT IN (after NOT is
// pushed down), notin only safe ones, fallback at least one that may meet
// a documented fallback (a nullable column, a set that may empty, a row
// comparison).
const (
	sqrandPlain    = "plain"
	sqrandNotIn    = "notin"
	sqrandFallback = "fallback"
)

var sqrandClasses = []string{sqrandPlain, sqrandNotIn, sqrandFallback}

// sqrandFallbackReasons are the removal reasons of the documented fallbacks
// (shapecache/subquery.go) that a fallback case may meet.
var sqrandFallbackReasons = []string{
	"a NULL enters or leaves a NOT IN subquery",
	"a value enters an empty NOT IN subquery",
	"a NOT IN subquery becomes empty",
	"moves of a row-comparison NOT IN subquery",
}

// sqrandRaceReason is the reason of a shape whose dependency changed between
// its registration and its snapshot in a way the snapshot does not hold.
const sqrandRaceReason = "subquery dependency changed"

type sqrandClassStats struct {
	cases, moveIns, moveOuts, refetches, raced int
	reasons                                    map[string]int
}

type sqrandStats struct {
	cases, steps int
	slowest      time.Duration
	byClass      map[string]*sqrandClassStats
}

func (s *sqrandStats) class(cl string) *sqrandClassStats {
	if s.byClass == nil {
		s.byClass = map[string]*sqrandClassStats{}
	}
	if s.byClass[cl] == nil {
		s.byClass[cl] = &sqrandClassStats{reasons: map[string]int{}}
	}
	return s.byClass[cl]
}

func (s *sqrandStats) add(o sqrandStats) {
	s.cases += o.cases
	s.steps += o.steps
	s.slowest = max(s.slowest, o.slowest)
	for cl, x := range o.byClass {
		y := s.class(cl)
		y.cases += x.cases
		y.moveIns += x.moveIns
		y.moveOuts += x.moveOuts
		y.refetches += x.refetches
		y.raced += x.raced
		for r, n := range x.reasons {
			y.reasons[r] += n
		}
	}
}

func (s *sqrandStats) moveIns() (n int) {
	for _, x := range s.byClass {
		n += x.moveIns
	}
	return n
}

func (s *sqrandStats) moveOuts() (n int) {
	for _, x := range s.byClass {
		n += x.moveOuts
	}
	return n
}

// sqrandCol is a column of a random table.
type sqrandCol struct {
	name    string
	typ     string // int4, int8, text or bool
	notNull bool
}

// sqrandTable is a random table: its primary key is cols[:pk]; keys are the
// keys (SQL literals) of the rows mutations may touch; anchors, rows
// that no mutation touches, have keys whose first column is at least
// anchorMin (anchor is the predicate that holds for them).
type sqrandTable struct {
	name    string
	cols    []sqrandCol
	pk      int
	keys    [][]string
	anchors [][]string
	anchor  string
}

// sqrandSchema is a round's tables: o (the shapes' table), m and, for most
// rounds, n.
type sqrandSchema struct {
	o, m, n *sqrandTable
	ddl     string
}

func (s *sqrandSchema) tables() []*sqrandTable {
	if s.n == nil {
		return []*sqrandTable{s.o, s.m}
	}
	return []*sqrandTable{s.o, s.m, s.n}
}

var sqrandTypes = []string{"int4", "int8", "text", "bool"}

// sqrandLiteral is a random SQL literal of typ (small domains, so that
// values meet).
func sqrandLiteral(rng *rand.Rand, typ string) string {
	switch typ {
	case "bool":
		return strconv.FormatBool(rng.IntN(2) == 0)
	case "text":
		if rng.IntN(4) == 0 {
			return sqrandQuote(sqrandTexts[rng.IntN(len(sqrandTexts))])
		}
		return "'" + string(rune('a'+rng.IntN(5))) + "'"
	}
	return strconv.Itoa(rng.IntN(6))
}

// sqrandTexts are texts besides 'a'…'e': empty, upper case (collations
// order it apart from byte order), quotes, slashes (tags are slash
// separated), ':' (row comparison slots), non-ASCII.
var sqrandTexts = []string{"", "B", "it's", "a/b", "é", "a b", `\`, "a:b"}

func sqrandQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// sqrandUnquote is the text of a literal sqrandLiteral made.
func sqrandUnquote(lit string) string {
	if len(lit) >= 2 && lit[0] == '\'' {
		return strings.ReplaceAll(lit[1:len(lit)-1], "''", "'")
	}
	return lit
}

// sqrandValue is sqrandLiteral or, for a nullable column, sometimes NULL.
func sqrandValue(rng *rand.Rand, c sqrandCol) string {
	if !c.notNull && rng.IntN(6) == 0 {
		return "NULL"
	}
	return sqrandLiteral(rng, c.typ)
}

// sqrandNewTable makes a random table with rows keyed 1…nkeys and two
// anchors.
func sqrandNewTable(rng *rand.Rand, name string, ndata, nkeys int) *sqrandTable {
	t := &sqrandTable{name: name}
	pkTypes := []string{"int4", "int8", "text"}
	if rng.IntN(4) == 0 {
		t.pk = 2
		t.cols = append(t.cols, sqrandCol{"k1", pkTypes[rng.IntN(3)], true}, sqrandCol{"k2", pkTypes[rng.IntN(3)], true})
	} else {
		t.pk = 1
		t.cols = append(t.cols, sqrandCol{"id", pkTypes[rng.IntN(3)], true})
	}
	for i := range ndata {
		t.cols = append(t.cols, sqrandCol{string(rune('a' + i)), sqrandTypes[rng.IntN(len(sqrandTypes))], rng.IntN(2) == 0})
	}
	keyLit := func(typ string, i int) string {
		if typ == "text" {
			return fmt.Sprintf("'k%02d'", i)
		}
		return strconv.Itoa(i)
	}
	for i := 1; i <= nkeys; i++ {
		key := []string{keyLit(t.cols[0].typ, i)}
		if t.pk == 2 {
			key = append(key, keyLit(t.cols[1].typ, 1+i%2))
		}
		t.keys = append(t.keys, key)
	}
	if t.cols[0].typ == "text" {
		t.anchor = t.cols[0].name + " >= 'z'"
	} else {
		t.anchor = t.cols[0].name + " >= 100"
	}
	for i := range 2 {
		key := []string{strconv.Itoa(100 + i)}
		if t.cols[0].typ == "text" {
			key[0] = fmt.Sprintf("'z%d'", i)
		}
		if t.pk == 2 {
			key = append(key, keyLit(t.cols[1].typ, 1))
		}
		t.anchors = append(t.anchors, key)
	}
	return t
}

func (t *sqrandTable) create() string {
	var defs, pk []string
	for i, c := range t.cols {
		d := c.name + " " + c.typ
		if c.notNull {
			d += " NOT NULL"
		}
		defs = append(defs, d)
		if i < t.pk {
			pk = append(pk, c.name)
		}
	}
	return fmt.Sprintf("CREATE TABLE %s (%s, PRIMARY KEY (%s))", t.name, strings.Join(defs, ", "), strings.Join(pk, ", "))
}

func (t *sqrandTable) keyCond(key []string) string {
	var conds []string
	for i, k := range key {
		conds = append(conds, t.cols[i].name+" = "+k)
	}
	return strings.Join(conds, " AND ")
}

// upsert writes a row of key with random values.
func (t *sqrandTable) upsert(rng *rand.Rand, key []string) string {
	var names, vals, sets []string
	for i, c := range t.cols {
		names = append(names, c.name)
		if i < t.pk {
			vals = append(vals, key[i])
			continue
		}
		vals = append(vals, sqrandValue(rng, c))
		sets = append(sets, c.name+" = EXCLUDED."+c.name)
	}
	return fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s) ON CONFLICT (%s) DO UPDATE SET %s", t.name,
		strings.Join(names, ", "), strings.Join(vals, ", "), strings.Join(names[:t.pk], ", "), strings.Join(sets, ", "))
}

// mutation is a random statement on t that leaves its anchors alone.
func (t *sqrandTable) mutation(rng *rand.Rand) string {
	key := t.keys[rng.IntN(len(t.keys))]
	data := t.cols[t.pk:]
	set := func() string {
		var sets []string
		for _, i := range rng.Perm(len(data))[:1+rng.IntN(min(2, len(data)))] {
			sets = append(sets, data[i].name+" = "+sqrandValue(rng, data[i]))
		}
		return strings.Join(sets, ", ")
	}
	switch r := rng.IntN(20); {
	case r < 7:
		return t.upsert(rng, key)
	case r < 13:
		return fmt.Sprintf("UPDATE %s SET %s WHERE %s", t.name, set(), t.keyCond(key))
	case r < 16:
		return fmt.Sprintf("DELETE FROM %s WHERE %s", t.name, t.keyCond(key))
	case r < 18:
		c := data[rng.IntN(len(data))]
		cond := c.name + " = " + sqrandLiteral(rng, c.typ)
		if t.anchor != "" {
			cond += " AND NOT (" + t.anchor + ")"
		}
		return fmt.Sprintf("UPDATE %s SET %s WHERE %s", t.name, set(), cond)
	default:
		// A primary key change to a free key.
		to := t.keys[rng.IntN(len(t.keys))]
		var sets []string
		for i, k := range to {
			sets = append(sets, t.cols[i].name+" = "+k)
		}
		return fmt.Sprintf("UPDATE %s SET %s WHERE %s AND NOT EXISTS (SELECT 1 FROM %s WHERE %s)",
			t.name, strings.Join(sets, ", "), t.keyCond(key), t.name, t.keyCond(to))
	}
}

// sqrandNewSchema makes round's tables, with enough column types in common
// for subqueries between them.
func sqrandNewSchema(rng *rand.Rand, round int) *sqrandSchema {
	shared := func(a, b *sqrandTable) int {
		seen := map[string]bool{}
		for _, c := range a.cols {
			for _, d := range b.cols {
				if c.typ == d.typ && !seen[c.typ] {
					seen[c.typ] = true
				}
			}
		}
		return len(seen)
	}
	for {
		p := fmt.Sprintf("sqr%d_", round)
		s := &sqrandSchema{
			o: sqrandNewTable(rng, p+"o", 3+rng.IntN(2), 14),
			m: sqrandNewTable(rng, p+"m", 3+rng.IntN(2), 8),
		}
		if rng.IntN(4) != 0 {
			s.n = sqrandNewTable(rng, p+"n", 2+rng.IntN(2), 6)
		}
		if shared(s.o, s.m) >= 2 && (s.n == nil || shared(s.m, s.n) >= 1 && shared(s.o, s.n) >= 1) {
			return s
		}
	}
}

// sqrandGen generates one where clause on s.o.
type sqrandGen struct {
	rng    *rand.Rand
	s      *sqrandSchema
	params []string
	// safe: top-level NOT IN subqueries only in the safe form; unsafe is
	// set when one is not; notIn when there is a top-level NOT IN.
	safe, unsafe, notIn bool
	subs                int // top-level subqueries
	written             []sqrandWritten
}

// sqrandWritten is a top-level subquery as written, whether with NOT IN,
// and whether negated after NOT is pushed down.
type sqrandWritten struct {
	text           string
	notIn, negated bool
}

// expr is a random boolean expression on t, whose subqueries are at
// level (0: the clause's own); neg tells whether an odd number of NOTs
// wraps it; deps maps each subquery of this where to its polarity.
func (g *sqrandGen) expr(t *sqrandTable, level, depth int, neg bool, deps map[string]bool) string {
	r := g.rng.IntN(10)
	switch {
	case depth > 0 && r < 3:
		return "(" + g.expr(t, level, depth-1, neg, deps) + " AND " + g.expr(t, level, depth-1, neg, deps) + ")"
	case depth > 0 && r < 6:
		return "(" + g.expr(t, level, depth-1, neg, deps) + " OR " + g.expr(t, level, depth-1, neg, deps) + ")"
	case depth > 0 && r < 7:
		return "NOT (" + g.expr(t, level, depth-1, !neg, deps) + ")"
	}
	if g.rng.IntN(10) < 6 {
		if s := g.subquery(t, level, neg, deps); s != "" {
			return s
		}
	}
	return g.plain(t)
}

// plain is a random predicate on one column of t.
func (g *sqrandGen) plain(t *sqrandTable) string {
	c := t.cols[g.rng.IntN(len(t.cols))]
	lit := sqrandLiteral(g.rng, c.typ)
	if g.rng.IntN(5) == 0 {
		g.params = append(g.params, sqrandUnquote(lit))
		lit = "$" + strconv.Itoa(len(g.params))
	}
	switch r := g.rng.IntN(8); {
	case r == 0:
		return c.name + " IS NULL"
	case r == 1:
		return c.name + " IS NOT NULL"
	case c.typ == "bool" && r < 4:
		return c.name
	case c.typ == "bool":
		return c.name + " = " + lit
	case r < 4:
		return c.name + " = " + lit
	case r < 5:
		return c.name + " <> " + lit
	case r < 6:
		return c.name + " < " + lit
	case r < 7:
		return c.name + " >= " + lit
	}
	return c.name + " IN (" + lit + ", " + sqrandLiteral(g.rng, c.typ) + ")"
}

// subquery is a random `left [NOT] IN (SELECT … FROM u [WHERE …])` from t
// to a table below it, or "" when there is none to use.
func (g *sqrandGen) subquery(t *sqrandTable, level int, neg bool, deps map[string]bool) string {
	var u *sqrandTable
	switch r := g.rng.IntN(10); {
	case level == 0 && r < 2:
		u = g.s.o // the shape's own table
	case level == 0 && r < 4 && g.s.n != nil:
		u = g.s.n
	case level == 0:
		u = g.s.m
	case t == g.s.m && g.s.n != nil:
		u = g.s.n
	default:
		return ""
	}
	if level == 0 && g.subs >= 3 {
		return ""
	}
	if level == 0 && len(g.written) > 0 && g.rng.IntN(4) == 0 {
		// The same subquery again (one dependency at several
		// positions), with the same polarity.
		w := g.written[g.rng.IntN(len(g.written))]
		if neg != w.notIn == w.negated {
			g.subs++
			return w.text
		}
	}
	notIn := g.rng.IntN(3) == 0
	negated := neg != notIn // after NOT is pushed down to it
	safeOnly := level == 0 && negated && g.safe
	// Pairs of columns of equal types (the inner one NOT NULL when safe).
	type pair struct{ l, r sqrandCol }
	var pairs []pair
	for _, a := range t.cols {
		for _, b := range u.cols {
			if a.typ == b.typ && (b.notNull || !safeOnly) {
				pairs = append(pairs, pair{a, b})
			}
		}
	}
	if len(pairs) == 0 {
		return ""
	}
	p := pairs[g.rng.IntN(len(pairs))]
	left, right := p.l.name, p.r.name
	rowCmp := false
	if !safeOnly && g.rng.IntN(5) == 0 {
		q := pairs[g.rng.IntN(len(pairs))]
		if q.l.name != p.l.name && q.r.name != p.r.name {
			left, right = "("+p.l.name+", "+q.l.name+")", p.r.name+", "+q.r.name
			rowCmp = true
		}
	}
	inner := ""
	if g.rng.IntN(5) != 0 {
		inner = g.expr(u, level+1, g.rng.IntN(3), false, map[string]bool{})
	}
	anchored := inner == ""
	if inner != "" && (safeOnly || level == 0 && negated && g.rng.IntN(2) == 0) {
		inner = "(" + inner + ") OR " + u.anchor
		anchored = true
	}
	sel := "SELECT " + right + " FROM " + u.name
	if inner != "" {
		sel += " WHERE " + inner
	}
	if pol, ok := deps[sel]; ok && pol != negated {
		return "" // one dependency cannot have both polarities
	}
	deps[sel] = negated
	if level == 0 {
		g.subs++
		if negated {
			g.notIn = true
			if rowCmp || !p.r.notNull || !anchored {
				g.unsafe = true
			}
		}
	}
	op := " IN "
	if notIn {
		op = " NOT IN "
	}
	text := left + op + "(" + sel + ")"
	if level == 0 {
		g.written = append(g.written, sqrandWritten{text, notIn, negated})
	}
	return text
}

// sqrandCase is one random clause followed by a client.Shape.
type sqrandCase struct {
	i      int
	clause string
	params []string
	def    client.ShapeDef
	cols   []sqrandCol // those the shape selects
	start  int         // the step the shape starts at
	class  string
	sh     *client.Shape
	notify chan struct{}
	done   chan error

	mu       sync.Mutex
	handle   string
	seen     map[string]bool // every handle of its batches
	syncing  bool            // since the start or the last refetch, not yet up to date
	moveIns  int
	moveOuts int
	// refetches are the handles removed under the client, with whether
	// it was still syncing.
	refetches []sqrandRefetch
}

type sqrandRefetch struct {
	handle  string
	syncing bool
}

func (c *sqrandCase) observe(sc client.ShapeChange) {
	c.mu.Lock()
	if sc.MustRefetch {
		c.refetches = append(c.refetches, sqrandRefetch{handle: c.handle, syncing: c.syncing})
		c.syncing = true
	}
	if sc.UpToDate {
		c.syncing = false
	}
	c.handle = sc.Handle
	c.seen[sc.Handle] = true
	for _, m := range sc.Moves {
		if m.Kind == client.MoveIn {
			c.moveIns++
		} else {
			c.moveOuts++
		}
	}
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// pgSQL is the clause's query in Postgres, params inlined as untyped
// literals (as volt types them: by their context), one text per row.
func (c *sqrandCase) pgSQL(o *sqrandTable) string {
	clause := c.clause
	for i := len(c.params); i >= 1; i-- {
		clause = strings.ReplaceAll(clause, "$"+strconv.Itoa(i), sqrandQuote(c.params[i-1]))
	}
	var cols []string
	for _, col := range c.cols {
		cols = append(cols, fmt.Sprintf("coalesce(to_json(%s)#>>'{}', '∅')", col.name))
	}
	return fmt.Sprintf("SELECT concat_ws('|', %s) FROM %s WHERE %s", strings.Join(cols, ", "), o.name, clause)
}

// rows renders the client's rows as pgSQL does.
func (c *sqrandCase) rows(o *sqrandTable) []string {
	var out []string
	for _, r := range c.sh.Rows() {
		var vals []string
		for _, col := range c.cols {
			if v := r[col.name]; v != nil {
				vals = append(vals, fmt.Sprint(v))
			} else {
				vals = append(vals, "∅")
			}
		}
		out = append(out, strings.Join(vals, "|"))
	}
	slices.Sort(out)
	return out
}

// sqrandRound runs n cases on a new random schema for steps steps.
func sqrandRound(t *testing.T, v *volt, cl *client.Client, db string, rng *rand.Rand, seed uint64, round, n, steps int) sqrandStats {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := sqrandNewSchema(rng, round)
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var ddl []string
	for _, tb := range s.tables() {
		ddl = append(ddl, tb.create(), "ALTER TABLE "+tb.name+" REPLICA IDENTITY FULL")
		for _, k := range tb.keys[:len(tb.keys)*2/3] {
			ddl = append(ddl, tb.upsert(rng, k))
		}
		for _, k := range tb.anchors {
			ddl = append(ddl, tb.upsert(rng, k))
		}
	}
	if _, err := conn.Exec(ctx, strings.Join(ddl, "; ")); err != nil {
		t.Fatalf("round %d schema: %v\n%s", round, err, strings.Join(ddl, ";\n"))
	}
	for _, tb := range s.tables() {
		s.ddl += tb.create() + "; "
	}
	t.Logf("round %d: %s", round, s.ddl)

	var cases []*sqrandCase
	for i := range n {
		g := &sqrandGen{rng: rng, s: s, safe: rng.IntN(8) != 0}
		var clause string
		for g.subs == 0 {
			g.params, g.subs, g.unsafe, g.notIn, g.written = nil, 0, false, false, nil
			clause = g.expr(s.o, 0, 1+rng.IntN(3), false, map[string]bool{})
		}
		c := &sqrandCase{i: i, clause: clause, params: g.params, class: sqrandPlain, cols: s.o.cols,
			notify: make(chan struct{}, 1), done: make(chan error, 1), syncing: true, seen: map[string]bool{}}
		switch {
		case g.unsafe:
			c.class = sqrandFallback
		case g.notIn:
			c.class = sqrandNotIn
		}
		// Half the shapes start with the round, half in its middle; some
		// select some columns only (not always those of the clause), some
		// are replica=full.
		if i%2 == 1 {
			c.start = steps / 2
		}
		def := client.ShapeDef{Table: s.o.name, Where: clause, Params: g.params}
		if rng.IntN(4) == 0 {
			c.cols = slices.Clone(s.o.cols[:s.o.pk])
			for _, col := range s.o.cols[s.o.pk:] {
				if rng.IntN(2) == 0 {
					c.cols = append(c.cols, col)
				}
			}
			for _, col := range c.cols {
				def.Columns = append(def.Columns, col.name)
			}
		}
		if rng.IntN(4) == 0 {
			def.Replica = "full"
		}
		c.def = def
		if c.sh, err = cl.Shape(def); err != nil {
			t.Fatal(err)
		}
		c.sh.Subscribe(c.observe)
		cases = append(cases, c)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	// Mutations weigh the inner tables, whose changes move rows.
	mutation := func(inner bool) string {
		tbs := s.tables()
		r := rng.IntN(10)
		switch {
		case r < 4 && !inner:
			return s.o.mutation(rng)
		case r < 7 || s.n == nil:
			return s.m.mutation(rng)
		}
		return tbs[2].mutation(rng)
	}
	// tx is a transaction of up to max statements; inner ones change
	// only the inner tables (moves without the shapes' own changes).
	tx := func(max int, inner bool) string {
		var stmts []string
		for range 1 + rng.IntN(max) {
			stmts = append(stmts, mutation(inner))
		}
		return "BEGIN; " + strings.Join(stmts, "; ") + "; COMMIT"
	}
	var slowest time.Duration // from a step's last commit to every shape equal
	for step := range steps {
		starting := false
		for _, c := range cases {
			if c.start == step {
				starting = true
				wg.Add(1)
				go func() {
					defer wg.Done()
					c.done <- c.sh.Run(ctx)
				}()
			}
		}
		var what string
		if starting || rng.IntN(2) == 0 {
			// Two connections at once, racing the shapes' creation or
			// their move-ins: some bursts are many small transactions on
			// the inner tables, moving values in and out while move-ins
			// run.
			var bursts [2][]string
			small := rng.IntN(3) == 0
			for i := range bursts {
				n := 2 + rng.IntN(3) + 3*sqrandBtoi(starting)
				if small {
					n *= 2
				}
				for range n {
					if small {
						bursts[i] = append(bursts[i], tx(1, rng.IntN(4) != 0))
					} else {
						bursts[i] = append(bursts[i], tx(4, false))
					}
				}
			}
			xids := sqBurst(t, db, bursts[:], "40P01", "23505") // deadlocks, and key changes meeting each other
			what = fmt.Sprintf("burst %q, transaction ids %q", bursts, xids)
		} else {
			q := tx(4, false)
			if _, err := conn.Exec(ctx, q); err != nil {
				t.Fatalf("round %d step %d %s: %v", round, step, q, err)
			}
			what = q
		}
		stepEnd := time.Now()
		for _, c := range cases {
			if c.start > step {
				continue
			}
			sqrandAwait(t, v, conn, s, c, fmt.Sprintf("seed %d round %d step %d (%s)", seed, round, step, what))
		}
		slowest = max(slowest, time.Since(stepEnd))
	}
	cancel()
	wg.Wait()

	// Attribute the refetches to the reasons volt logged.
	reasons, created := sqrandRemovals(v.Log())
	var st sqrandStats
	st.cases, st.steps, st.slowest = n, steps, slowest
	for _, c := range cases {
		cs := st.class(c.class)
		cs.cases++
		c.mu.Lock()
		cs.moveIns += c.moveIns
		cs.moveOuts += c.moveOuts
		for _, rf := range c.refetches {
			why, ok := reasons[rf.handle]
			if rf.handle == "" {
				// Removed before its first answer: a shape of this
				// clause that the client never saw.
				for _, h := range created[s.o.name+" "+c.clause] {
					if r, removed := reasons[h]; removed && !c.seen[h] {
						why, ok = r, true
					}
				}
			}
			if !ok {
				why = "(no removal logged for handle " + rf.handle + ")"
			}
			cs.reasons[why]++
			if rf.syncing && strings.HasPrefix(why, sqrandRaceReason) {
				cs.raced++
				continue
			}
			cs.refetches++
			documented := slices.ContainsFunc(sqrandFallbackReasons, func(r string) bool { return strings.HasPrefix(why, r) })
			if c.class != sqrandFallback || !documented {
				t.Errorf("round %d case %d (class %s) refetched: %s\n  clause %s\n  params %q\n  columns %q replica %q\n  schema %s",
					round, c.i, c.class, why, c.clause, c.params, c.def.Columns, c.def.Replica, s.ddl)
			}
		}
		c.mu.Unlock()
	}
	// The round's shapes go with its tables (big runs would pile them up).
	for _, tb := range s.tables() {
		if _, err := conn.Exec(context.Background(), "DROP TABLE "+tb.name); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// sqrandAwait waits (60 s at most: the machine may be loaded) until c's
// client is up to date with Postgres' rows, and fails naming the case
// otherwise.
func sqrandAwait(t *testing.T, v *volt, conn *pgx.Conn, s *sqrandSchema, c *sqrandCase, what string) {
	t.Helper()
	sql := c.pgSQL(s.o)
	rows, err := conn.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%s: case %d: %s: %v", what, c.i, sql, err)
	}
	want, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("%s: case %d: %s: %v", what, c.i, sql, err)
	}
	slices.Sort(want)
	deadline := time.After(60 * time.Second)
	for {
		got := c.rows(s.o)
		if c.sh.UpToDate() && slices.Equal(got, want) {
			return
		}
		select {
		case <-c.notify:
		case err := <-c.done:
			t.Fatalf("%s: case %d: the shape stopped: %v\n  clause %s\n  params %q\n  columns %q replica %q\n  schema %s", what, c.i, err, c.clause, c.params, c.def.Columns, c.def.Replica, s.ddl)
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			upToDate := c.sh.UpToDate()
			sqrandDump(t, v, conn, s, c)
			// Lagging or wrong: does it get there later?
			late := "still not equal 60 s later"
			for start := time.Now(); time.Since(start) < 60*time.Second; time.Sleep(100 * time.Millisecond) {
				if c.sh.UpToDate() && slices.Equal(c.rows(s.o), want) {
					late = fmt.Sprintf("equal %s later", time.Since(start).Round(time.Millisecond))
					break
				}
			}
			t.Fatalf("%s: case %d (class %s), not equal after 60 s (up to date %v; %s):\n  schema %s\n  clause %s\n  params %q\n  columns %q replica %q\n  client   %q\n  postgres %q\n  only client %q\n  only postgres %q",
				what, c.i, c.class, upToDate, late, s.ddl, c.clause, c.params, c.def.Columns, c.def.Replica, got, want, sqrandMinus(got, want), sqrandMinus(want, got))
		}
	}
}

// sqrandDump logs c's shape log as volt serves it, from the beginning,
// and the schema's rows with the transaction that last wrote each (xmin),
// to match against the log's txids.
func sqrandDump(t *testing.T, v *volt, conn *pgx.Conn, s *sqrandSchema, c *sqrandCase) {
	for _, tb := range s.tables() {
		var rows []string
		err := pgx.BeginFunc(context.Background(), conn, func(tx pgx.Tx) error {
			rs, err := tx.Query(context.Background(), "SELECT xmin::text || ' ' || row_to_json(t)::text FROM "+tb.name+" t ORDER BY xmin::text::int8")
			if err != nil {
				return err
			}
			rows, err = pgx.CollectRows(rs, pgx.RowTo[string])
			return err
		})
		t.Logf("%s rows (xmin, row): %q, %v", tb.name, rows, err)
	}
	c.mu.Lock()
	handle := c.handle
	c.mu.Unlock()
	kv := []string{"table", s.o.name, "where", c.clause, "handle", handle}
	for i, p := range c.params {
		kv = append(kv, fmt.Sprintf("params[%d]", i+1), p)
	}
	if len(c.def.Columns) > 0 {
		kv = append(kv, "columns", strings.Join(c.def.Columns, ","))
	}
	if c.def.Replica != "" {
		kv = append(kv, "replica", c.def.Replica)
	}
	offset := "-1"
	for range 20 {
		r := get(t, v.shapeURL(append(kv, "offset", offset)...))
		t.Logf("shape log from %s: %d %s", offset, r.Status, r.Body)
		next := r.Header.Get("electric-offset")
		if r.Status != 200 || next == offset || r.Header.Get("electric-up-to-date") != "" {
			return
		}
		offset = next
	}
}

func sqrandMinus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

var sqrandRemoved = regexp.MustCompile(`msg="shape removed" .*?handle=(\S+) reason=("(?:[^"\\]|\\.)*"|\S+)`)

var sqrandCreated = regexp.MustCompile(`msg="shape created" .*?handle=(\S+) table=public\.(\S+) where=("(?:[^"\\]|\\.)*"|\S+)`)

// sqrandRemovals maps the handles of removed shapes to the reasons volt
// logged, and "table where" to the handles created for it.
func sqrandRemovals(log string) (reasons map[string]string, created map[string][]string) {
	unquote := func(s string) string {
		if u, err := strconv.Unquote(s); err == nil {
			return u
		}
		return s
	}
	reasons, created = map[string]string{}, map[string][]string{}
	for _, m := range sqrandRemoved.FindAllStringSubmatch(log, -1) {
		reasons[m[1]] = unquote(m[2])
	}
	for _, m := range sqrandCreated.FindAllStringSubmatch(log, -1) {
		k := m[2] + " " + unquote(m[3])
		created[k] = append(created[k], m[1])
	}
	return reasons, created
}

func sqrandBtoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestSubquerySnapshotRacesARoutedCommit: a transaction that changes a
// subquery's table is sent to volt (and routed) before it is visible to
// snapshots, and a subquery shape is created in between: its snapshot
// does not hold the transaction, which reached volt before the shape
// existed. The shape must still end with the transaction's moves (here
// user 1 leaves: its posts move out) or refetch, never keep the rows.
func TestSubquerySnapshotRacesARoutedCommit(t *testing.T) {
	db := snaprStandbyDB(t)
	pgtest.Exec(t, db,
		`CREATE TABLE users (id int PRIMARY KEY, active bool NOT NULL)`,
		`CREATE TABLE posts (id int PRIMARY KEY, user_id int, title text)`,
		`INSERT INTO users VALUES (1, true), (2, true)`,
		`INSERT INTO posts VALUES (1, 1, 'a'), (2, 2, 'b')`)
	v := startVolt(t, db, sqFlag, "VOLT_LONG_POLL_TIMEOUT=1s")
	conn, err := pgx.Connect(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	// The transaction takes user 1 out of the subquery's set.
	release := snaprHoldCommit(t, v, db, "users")
	// The shape's snapshot must wait for the transaction.
	clause := `user_id IN (SELECT id FROM users WHERE active)`
	f := sqmFollow(v, "table", "posts", "where", clause)
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		f.poll(t)
	}()
	snaprAwaitSnapshot(v)
	release()
	<-polled
	f.awaitEqual(t, conn, "posts", clause, "after the transaction is visible")
	if f.refetches > 0 {
		t.Fatalf("volt removed the shape (409)")
	}
}
