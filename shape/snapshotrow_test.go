package shape

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/internal/testseed"
)

// referenceSnapshotRow is how snapshot rows were rendered before
// SnapshotEncoder: values converted to volt.Values, then the live log's
// key and row builders.
func referenceSnapshotRow(s *Shape, raw [][]byte) []byte {
	vals := s.rawValues(raw, s.Selected)
	dst := []byte(`{"key":`)
	dst = appendString(dst, s.rowKey(vals))
	dst = append(dst, `,"value":`...)
	dst = s.appendRow(dst, vals, s.selected)
	dst = append(dst, `,"headers":{"operation":"insert","relation":`...)
	dst = append(dst, s.t.relation...)
	return append(dst, "}}"...)
}

// snapRowTables are tables whose rows TestSnapshotEncoderMatchesReference
// renders: a composite key with a boolean, no primary key (every column
// is the key, sorted by name), and names that need escaping.
func snapRowTables() []*volt.Table {
	return []*volt.Table{
		{OID: 1, Schema: "public", Name: "items", PrimaryKey: []string{"org", "id"}, Columns: []volt.Column{
			{Name: "id", TypeOID: 20, TypeName: "int8", TypeMod: -1, PKIndex: 1},
			{Name: "org", TypeOID: 25, TypeName: "text", TypeMod: -1, PKIndex: 0},
			{Name: "done", TypeOID: 16, TypeName: "bool", TypeMod: -1, PKIndex: -1},
			{Name: "flags", TypeOID: 1000, TypeName: "bool", TypeMod: -1, Dims: 1, PKIndex: -1},
			{Name: "title", TypeOID: 25, TypeName: "text", TypeMod: -1, PKIndex: -1},
		}},
		{OID: 2, Schema: `we"ird/sch.ema`, Name: `t\ab`, Columns: []volt.Column{
			{Name: "b", TypeOID: 25, TypeName: "text", TypeMod: -1, PKIndex: -1},
			{Name: `a"q`, TypeOID: 16, TypeName: "bool", TypeMod: -1, PKIndex: -1},
			{Name: "ü", TypeOID: 25, TypeName: "text", TypeMod: -1, PKIndex: -1},
		}},
	}
}

// TestSnapshotEncoderMatchesReference checks that SnapshotEncoder renders
// exactly the bytes of the former SnapshotRow for values that need every
// kind of escaping (quotes, backslashes, key slashes, control bytes,
// invalid UTF-8, U+2028), NULLs and booleans, for whole rows and column
// subsets.
func TestSnapshotEncoderMatchesReference(t *testing.T) {
	seed := testseed.Seed(t)
	rng := rand.New(rand.NewPCG(seed, seed))
	pieces := []string{"", "a", "/", "//", `"`, `\`, "\n", "\t", "\r", "\x00", "\x1f", "\x7f", "é", "✓", "\u2028", "\u2029", "\xff", "\xe2\x80", "t", "f", "true", "12345", " "}
	value := func() []byte {
		if rng.IntN(8) == 0 {
			return nil
		}
		var b []byte
		for n := rng.IntN(5); n > 0; n-- {
			b = append(b, pieces[rng.IntN(len(pieces))]...)
		}
		return b
	}
	for _, table := range snapRowTables() {
		var defs []Definition
		defs = append(defs, Definition{Schema: table.Schema, Table: table.Name})
		if table.Name == "items" {
			defs = append(defs, Definition{Schema: table.Schema, Table: table.Name, Columns: []string{"id", "org", "done"}})
		}
		for _, def := range defs {
			s, err := New(def, table)
			if err != nil {
				t.Fatal(err)
			}
			enc := s.SnapshotEncoder()
			var buf []byte
			for i := 0; i < 3000; i++ {
				raw := make([][]byte, len(s.Selected))
				for k := range raw {
					raw[k] = value()
					if table.Columns[s.Selected[k]].TypeOID == 16 && rng.IntN(2) == 0 {
						raw[k] = []byte{"tf"[rng.IntN(2)]}
					}
				}
				want := referenceSnapshotRow(s, raw)
				buf = enc.Append(buf[:0], raw)
				if !bytes.Equal(buf, want) {
					t.Fatalf("%s %v row %q:\n got %s\nwant %s", table.Name, def.Columns, raw, buf, want)
				}
				if got := s.SnapshotRow(raw); !bytes.Equal(got, want) {
					t.Fatalf("SnapshotRow %q:\n got %s\nwant %s", raw, got, want)
				}
			}
		}
	}
}

// BenchmarkSnapshotRow compares the encoder with the former SnapshotRow
// on a row of volt bench's S1 table.
func BenchmarkSnapshotRow(b *testing.B) {
	table := &volt.Table{OID: 1, Schema: "public", Name: "s1_items_1000000", PrimaryKey: []string{"id"}, Columns: []volt.Column{
		{Name: "id", TypeOID: 20, TypeName: "int8", TypeMod: -1, PKIndex: 0},
		{Name: "owner_id", TypeOID: 23, TypeName: "int4", TypeMod: -1, PKIndex: -1},
		{Name: "name", TypeOID: 25, TypeName: "text", TypeMod: -1, PKIndex: -1},
		{Name: "title", TypeOID: 25, TypeName: "text", TypeMod: -1, PKIndex: -1},
		{Name: "status", TypeOID: 25, TypeName: "text", TypeMod: -1, PKIndex: -1},
		{Name: "priority", TypeOID: 23, TypeName: "int4", TypeMod: -1, PKIndex: -1},
	}}
	s, err := New(Definition{Schema: "public", Table: table.Name}, table)
	if err != nil {
		b.Fatal(err)
	}
	raw := [][]byte{[]byte("123456"), []byte("456"), []byte("name 123456"), []byte("issue title number 123456"), []byte("open"), []byte("1")}
	b.Run("reference", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = referenceSnapshotRow(s, raw)
		}
	})
	b.Run("encoder", func(b *testing.B) {
		b.ReportAllocs()
		enc := s.SnapshotEncoder()
		var buf []byte
		for b.Loop() {
			buf = enc.Append(buf[:0], raw)
		}
	})
}
