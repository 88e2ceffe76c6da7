package client

import (
	"iter"
	"maps"
	"reflect"
	"slices"
)

// TypedShape is a Shape whose rows are also kept as values of the struct
// type T, decoded as ScanRow does. Create it with ShapeOf and call Run.
// Its methods are safe to call from any goroutine, as Shape's; the
// embedded Shape gives the map form of the rows, waits and subscriptions.
type TypedShape[T any] struct {
	*Shape
	dec  *structDecoder
	rows map[string]T // guarded by Shape.mu
}

// ShapeOf returns a TypedShape of def whose rows are decoded into T, a
// struct type (see ScanRow for how columns match fields). A row that does
// not decode stops Run with an error wrapping ErrTypeMismatch, or naming
// the field without a column. It syncs nothing until Run.
//
//	type Todo struct {
//		ID    string `db:"id"`
//		Title string `db:"title"`
//		Done  bool   `db:"done"`
//	}
//	todos, err := client.ShapeOf[Todo](c, client.ShapeDef{Table: "todos"})
func ShapeOf[T any](c *Client, def ShapeDef, opts ...ShapeOption) (*TypedShape[T], error) {
	dec, err := decoderOf(reflect.TypeFor[T]())
	if err != nil {
		return nil, err
	}
	sh, err := c.Shape(def, opts...)
	if err != nil {
		return nil, err
	}
	ts := &TypedShape[T]{Shape: sh, dec: dec, rows: map[string]T{}}
	sh.sink = ts
	return ts, nil
}

// put decodes the row of key (Shape.mu held).
func (ts *TypedShape[T]) put(key string, row Row) error {
	var v T
	if err := ts.dec.decode(row, reflect.ValueOf(&v).Elem()); err != nil {
		return err
	}
	ts.rows[key] = v
	return nil
}

func (ts *TypedShape[T]) remove(key string) { delete(ts.rows, key) }

func (ts *TypedShape[T]) reset() { clear(ts.rows) }

// All returns an iterator over the current rows, ordered by key, with
// their keys: the rows as of the call. The loop body may call the shape's
// methods.
func (ts *TypedShape[T]) All() iter.Seq2[string, T] {
	return func(yield func(string, T) bool) {
		ts.mu.Lock()
		keys := slices.Sorted(maps.Keys(ts.rows))
		vals := make([]T, len(keys))
		for i, k := range keys {
			vals[i] = ts.rows[k]
		}
		ts.mu.Unlock()
		for i, k := range keys {
			if !yield(k, vals[i]) {
				return
			}
		}
	}
}

// Rows returns the current rows ordered by key.
func (ts *TypedShape[T]) Rows() []T {
	var out []T
	for _, v := range ts.All() {
		out = append(out, v)
	}
	return out
}

// Get returns the row with key.
func (ts *TypedShape[T]) Get(key string) (T, bool) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	v, ok := ts.rows[key]
	return v, ok
}

// Values returns an iterator over the current rows, ordered by key.
func (ts *TypedShape[T]) Values() iter.Seq[T] {
	return func(yield func(T) bool) {
		for _, v := range ts.All() {
			if !yield(v) {
				return
			}
		}
	}
}
