package shapecache

import (
	"reflect"
	"testing"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/postgres"
	"github.com/voltsync/volt/shape"
	"github.com/voltsync/volt/where"
)

func sampleRecords() []catalogRecord {
	return []catalogRecord{
		{Op: "add", ID: 3, Handle: "123-456", Key: "k|x", Definition: &shape.Definition{Schema: "public", Table: "items", Where: "owner_id = $1",
			Params: map[string]string{"1": "7"}, Columns: []string{"id", "Owner"}, Replica: "full", Log: "full",
			Queryable: []string{"id", "Owner", "owner_id"}},
			Snapshot: &postgres.SnapshotInfo{Snapshot: volt.Snapshot{Xmin: 10, Xmax: 20, Xip: []uint64{11, 15}}, LSN: 1 << 40},
			Terms:    []where.Term{{Column: "owner_id", Kind: where.KeyInt, Key: "7"}}, Indexed: true, Rows: 5, Ops: -2},
		{Op: "add", Handle: "h", Key: "k", Definition: &shape.Definition{Schema: "s", Table: "t", Replica: "default", Log: "changes_only"},
			Snapshot: &postgres.SnapshotInfo{}},
		{Op: "add", Handle: "sq", Key: "k2", Definition: &shape.Definition{Schema: "s", Table: "t", Where: "a IN (SELECT b FROM u)", Replica: "default", Log: "full", Subqueries: true},
			Snapshot: &postgres.SnapshotInfo{}},
		{Op: "del", Handle: "123-456"},
		{Op: "table", ID: 2, Table: &volt.Table{OID: 9, Schema: "public", Name: "items", PrimaryKey: []string{"id"}}},
	}
}

// TestCatalogRecordWithoutQueryable: a record written before
// queryable_columns was stored decodes, with no list.
func TestCatalogRecordWithoutQueryable(t *testing.T) {
	rec := sampleRecords()[0]
	d := *rec.Definition
	d.Queryable = nil
	rec.Definition = &d
	var got catalogRecord
	if err := decodeRecord(encodeRecord(rec), &got); err != nil || got.Definition.Queryable != nil {
		t.Fatalf("decoded %+v, %v", got.Definition, err)
	}
}

func TestCatalogRecordRoundTrip(t *testing.T) {
	for _, rec := range sampleRecords() {
		var got catalogRecord
		if err := decodeRecord(encodeRecord(rec), &got); err != nil {
			t.Fatalf("%s: %v", rec.Op, err)
		}
		if !reflect.DeepEqual(got, rec) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, rec)
		}
	}
}

// FuzzCatalogRecord: decoding arbitrary bytes never panics, and whatever
// decodes re-encodes to something that decodes to the same record.
func FuzzCatalogRecord(f *testing.F) {
	for _, rec := range sampleRecords() {
		f.Add(encodeRecord(rec))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var rec catalogRecord
		if decodeRecord(b, &rec) != nil || len(b) == 0 || b[0] == '{' {
			return // JSON bodies (table records) are encoding/json's business
		}
		var again catalogRecord
		if err := decodeRecord(encodeRecord(rec), &again); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(again, rec) {
			t.Fatalf("unstable: %+v vs %+v", again, rec)
		}
	})
}
