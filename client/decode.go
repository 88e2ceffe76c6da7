package client

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// ErrTypeMismatch is wrapped by the errors of ShapeOf and ScanRow for a
// value that does not fit its struct field: a NULL into a field that is
// not a pointer, slice, map, interface or sql.Scanner, a text into an
// int, an integer that overflows the field, and so on.
var ErrTypeMismatch = errors.New("value does not fit the field")

// ScanRow copies row into the struct dst points to, matching columns to
// fields as pgx's RowToStructByName does: the db tag names the column
// (`db:"title"`), `db:"-"` skips the field, and an untagged field takes
// the column of its name in lower case. Fields of embedded structs count
// as the struct's own. Every field needs its column in row; columns
// without a field are ignored (a column added to the table does not break
// a client).
//
// A value goes into a field of its own type or one it converts to without
// loss: integers into any integer type they fit, numeric (Decimal) into a
// string or a float, json into []byte, json.RawMessage or, unmarshalled,
// any other type, arrays element by element into slices. NULL goes into
// pointers (nil), slices, maps and interfaces; a field whose pointer is a
// sql.Scanner (sql.NullString, …) gets the value through Scan, as
// database/sql would pass it. Anything else fails with an error wrapping
// ErrTypeMismatch that names the column and the field.
func ScanRow(row Row, dst any) error {
	v := reflect.ValueOf(dst)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return fmt.Errorf("client: ScanRow needs a non-nil pointer to a struct, not %T", dst)
	}
	d, err := decoderOf(v.Type().Elem())
	if err != nil {
		return err
	}
	return d.decode(row, v.Elem())
}

// structDecoder decodes rows into one struct type.
type structDecoder struct {
	typ    reflect.Type
	fields []fieldDecoder
}

type fieldDecoder struct {
	index  []int
	column string
	name   string // Type.Field, for errors
}

// decoderOf returns the decoder of struct type t.
func decoderOf(t reflect.Type) (*structDecoder, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("client: rows decode into structs, not %s", t)
	}
	d := &structDecoder{typ: t}
	seen := map[string]string{}
	for _, f := range reflect.VisibleFields(t) {
		tag, tagged := f.Tag.Lookup("db")
		col, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && !tagged {
			ft := f.Type
			if ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct {
				return nil, fmt.Errorf("client: %s.%s: embedded pointers are not supported; embed the struct", t.Name(), f.Name)
			}
			if ft.Kind() == reflect.Struct {
				continue // its fields are visible fields of t
			}
		}
		if !f.IsExported() || col == "-" || viaPointer(t, f.Index) {
			continue
		}
		if col == "" {
			col = strings.ToLower(f.Name)
		}
		name := t.Name() + "." + f.Name
		if other, dup := seen[col]; dup {
			return nil, fmt.Errorf("client: %s and %s both take column %q", other, name, col)
		}
		seen[col] = name
		d.fields = append(d.fields, fieldDecoder{index: f.Index, column: col, name: name})
	}
	return d, nil
}

// viaPointer reports whether the field at index is reached through an
// embedded pointer (rejected above, so only through unexported ones).
func viaPointer(t reflect.Type, index []int) bool {
	for _, i := range index[:len(index)-1] {
		f := t.Field(i)
		if f.Type.Kind() == reflect.Pointer {
			return true
		}
		t = f.Type
	}
	return false
}

// decode sets the fields of v, a struct of d.typ, from row.
func (d *structDecoder) decode(row Row, v reflect.Value) error {
	for _, f := range d.fields {
		val, ok := row[f.column]
		if !ok {
			return fmt.Errorf("client: field %s: no column %q in the row (tag the field `db:\"-\"` to skip it)", f.name, f.column)
		}
		dst := v.FieldByIndex(f.index)
		if err := assign(dst, val); err != nil {
			return fmt.Errorf("client: column %q into field %s (%s): %w", f.column, f.name, dst.Type(), err)
		}
	}
	return nil
}

var (
	scannerType = reflect.TypeFor[sql.Scanner]()
	bytesType   = reflect.TypeFor[[]byte]()
)

// assign sets dst from a value of a Row.
func assign(dst reflect.Value, val any) error {
	if reflect.PointerTo(dst.Type()).Implements(scannerType) {
		return dst.Addr().Interface().(sql.Scanner).Scan(driverValue(val))
	}
	if val == nil {
		switch dst.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
			dst.SetZero()
			return nil
		}
		return fmt.Errorf("%w: NULL; use a pointer or a sql.Null type", ErrTypeMismatch)
	}
	if dst.Kind() == reflect.Pointer {
		elem := reflect.New(dst.Type().Elem())
		if err := assign(elem.Elem(), val); err != nil {
			return err
		}
		dst.Set(elem)
		return nil
	}
	src := reflect.ValueOf(val)
	if src.Type().AssignableTo(dst.Type()) {
		dst.Set(src)
		return nil
	}
	if ok, err := convert(dst, src, val); ok || err != nil {
		return err
	}
	return fmt.Errorf("%w: %s value %v", ErrTypeMismatch, src.Type(), val)
}

// convert sets dst from src where a lossless conversion exists; ok is
// false when none does.
func convert(dst, src reflect.Value, val any) (ok bool, err error) {
	switch {
	case isInt(src.Kind()) && isInt(dst.Kind()):
		if dst.OverflowInt(src.Int()) {
			return true, fmt.Errorf("%w: %d overflows it", ErrTypeMismatch, src.Int())
		}
		dst.SetInt(src.Int())
	case isInt(src.Kind()) && isUint(dst.Kind()):
		if n := src.Int(); n < 0 || dst.OverflowUint(uint64(n)) {
			return true, fmt.Errorf("%w: %d overflows it", ErrTypeMismatch, n)
		}
		dst.SetUint(uint64(src.Int()))
	case src.Kind() == reflect.Float64 && isFloat(dst.Kind()):
		dst.SetFloat(src.Float())
	case src.Type() == reflect.TypeFor[Decimal]() && isFloat(dst.Kind()):
		dst.SetFloat(val.(Decimal).Float64())
	case src.Kind() == reflect.String && dst.Kind() == reflect.String:
		dst.SetString(src.String())
	case src.Type() == reflect.TypeFor[json.RawMessage]():
		if dst.Type().ConvertibleTo(bytesType) && dst.Kind() == reflect.Slice {
			dst.SetBytes(append([]byte(nil), val.(json.RawMessage)...))
			return true, nil
		}
		if err := json.Unmarshal(val.(json.RawMessage), dst.Addr().Interface()); err != nil {
			return true, fmt.Errorf("%w: json: %w", ErrTypeMismatch, err)
		}
	case src.Kind() == reflect.Slice && dst.Kind() == reflect.Slice && src.Type() != bytesType:
		out := reflect.MakeSlice(dst.Type(), src.Len(), src.Len())
		for i := range src.Len() {
			if err := assign(out.Index(i), src.Index(i).Interface()); err != nil {
				return true, fmt.Errorf("element %d: %w", i, err)
			}
		}
		dst.Set(out)
	default:
		return false, nil
	}
	return true, nil
}

func isInt(k reflect.Kind) bool { return k >= reflect.Int && k <= reflect.Int64 }

func isUint(k reflect.Kind) bool { return k >= reflect.Uint && k <= reflect.Uint64 }

func isFloat(k reflect.Kind) bool { return k == reflect.Float32 || k == reflect.Float64 }

// driverValue converts a Row value to what database/sql passes to a
// Scanner: int64, float64, bool, []byte, string, time.Time or nil.
func driverValue(val any) any {
	switch v := val.(type) {
	case int32:
		return int64(v)
	case Decimal:
		return string(v)
	case json.RawMessage:
		return []byte(v)
	case TimeOfDay, Interval:
		return fmt.Sprint(v)
	}
	return val
}
