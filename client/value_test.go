package client

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestColumnParse(t *testing.T) {
	utc := func(y int, mo time.Month, d, h, mi, s, ns int) time.Time {
		return time.Date(y, mo, d, h, mi, s, ns, time.UTC)
	}
	tests := []struct {
		typ  string
		dims int
		in   string
		want any
	}{
		{"int2", 0, "-32768", int32(-32768)},
		{"int4", 0, "2147483647", int32(2147483647)},
		{"int8", 0, "9223372036854775807", int64(9223372036854775807)},
		{"float8", 0, "4.5", 4.5},
		{"float4", 0, "-Infinity", math.Inf(-1)},
		{"float8", 0, "Infinity", math.Inf(1)},
		{"float8", 0, "1e+300", 1e300},
		{"numeric", 0, "-12.340", Decimal("-12.340")},
		{"numeric", 0, "NaN", Decimal("NaN")},
		{"numeric", 0, "123456789012345678901234567890.000000000000000001", Decimal("123456789012345678901234567890.000000000000000001")},
		{"bool", 0, "t", true},
		{"bool", 0, "true", true},
		{"bool", 0, "f", false},
		{"bool", 0, "false", false},
		{"text", 0, "hello", "hello"},
		{"bpchar", 0, "ab  ", "ab  "},
		{"uuid", 0, "0000-1", "0000-1"},
		{"mood", 0, "happy", "happy"},
		{"timestamptz", 0, "2024-01-02 03:04:05.123456+00", utc(2024, 1, 2, 3, 4, 5, 123456000)},
		{"timestamptz", 0, "2024-01-02 03:04:05+05:30", utc(2024, 1, 1, 21, 34, 5, 0)},
		{"timestamptz", 0, "1900-01-01 00:00:00-00:01:15", utc(1900, 1, 1, 0, 1, 15, 0)},
		{"timestamptz", 0, "0044-03-15 12:00:00+00 BC", utc(-43, 3, 15, 12, 0, 0, 0)},
		{"timestamp", 0, "2024-02-29 23:59:59.5", utc(2024, 2, 29, 23, 59, 59, 500000000)},
		{"timestamp", 0, "12024-02-29 00:00:00", utc(12024, 2, 29, 0, 0, 0, 0)},
		{"timestamptz", 0, "infinity", "infinity"},
		{"date", 0, "2024-01-02", utc(2024, 1, 2, 0, 0, 0, 0)},
		{"date", 0, "0001-01-01 BC", utc(0, 1, 1, 0, 0, 0, 0)},
		{"date", 0, "-infinity", "-infinity"},
		{"time", 0, "13:04:05.25", TimeOfDay(13*time.Hour + 4*time.Minute + 5*time.Second + 250*time.Millisecond)},
		{"time", 0, "24:00:00", TimeOfDay(24 * time.Hour)},
		{"interval", 0, "P1Y2M3DT4H5M6.5S", Interval{Months: 14, Days: 3, Microseconds: 4*3600e6 + 5*60e6 + 6.5e6}},
		{"interval", 0, "P-1Y-2M3DT-4H-5M-6.000001S", Interval{Months: -14, Days: 3, Microseconds: -(4*3600e6 + 5*60e6 + 6000001)}},
		{"interval", 0, "PT0S", Interval{}},
		{"interval", 0, "P2W", Interval{Days: 14}},
		{"json", 0, `{"foo":"bar"}`, json.RawMessage(`{"foo":"bar"}`)},
		{"jsonb", 0, `[1, 2]`, json.RawMessage(`[1, 2]`)},
		{"bytea", 0, `\x0001fffe`, []byte{0, 1, 0xff, 0xfe}},
		{"bytea", 0, `\x`, []byte{}},
		{"int8", 1, "{1,2,3}", []any{int64(1), int64(2), int64(3)}},
		{"int8", 2, "{{1,2,3},{4,5,6}}", []any{[]any{int64(1), int64(2), int64(3)}, []any{int64(4), int64(5), int64(6)}}},
		{"float8", 1, "{1.2,-3.2,Infinity,-Infinity,NaN}", nil}, // checked below
		{"bool", 1, "{t,f,NULL}", []any{true, false, nil}},
		{"mood", 1, "{sad,ok,happy}", []any{"sad", "ok", "happy"}},
		{"text", 1, `{"a \"b\"",NULL,"NULL",null,"",c\,d,  x y  ,"\\"}`, []any{`a "b"`, nil, "NULL", nil, "", "c,d", "x y", `\`}},
		{"text", 1, "{}", []any{}},
		{"int4", 1, "[0:1]={7,8}", []any{int32(7), int32(8)}},
		{"jsonb", 1, `{"{\"foo\": \"bar\"}",NULL}`, []any{json.RawMessage(`{"foo": "bar"}`), nil}},
		{"point", 1, `{"(1.1,2.2)","(3.3,4.4)"}`, []any{"(1.1,2.2)", "(3.3,4.4)"}},
		{"box", 1, `{(1,1),(0,0);(2,2),(1,1)}`, []any{"(1,1),(0,0)", "(2,2),(1,1)"}},
		{"timestamptz", 1, `{"2024-01-02 03:04:05+00"}`, []any{utc(2024, 1, 2, 3, 4, 5, 0)}},
		{"numeric", 1, `{1.50,NaN}`, []any{Decimal("1.50"), Decimal("NaN")}},
	}
	for _, tt := range tests {
		got, err := Column{Type: tt.typ, Dims: tt.dims}.Parse(tt.in)
		if err != nil {
			t.Errorf("%s[%d] %q: %v", tt.typ, tt.dims, tt.in, err)
			continue
		}
		if tt.want == nil {
			continue
		}
		if g, ok := got.(time.Time); ok {
			if w, ok := tt.want.(time.Time); !ok || !g.Equal(w) {
				t.Errorf("%s %q = %v, want %v", tt.typ, tt.in, got, tt.want)
			}
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s[%d] %q = %#v, want %#v", tt.typ, tt.dims, tt.in, got, tt.want)
		}
	}
	got, _ := Column{Type: "float8", Dims: 1}.Parse("{1.2,-3.2,Infinity,-Infinity,NaN}")
	if fs := got.([]any); len(fs) != 5 || fs[0] != 1.2 || !math.IsInf(fs[2].(float64), 1) || !math.IsNaN(fs[4].(float64)) {
		t.Errorf("float8[] = %v", got)
	}
}

func TestColumnParseInvalid(t *testing.T) {
	tests := []struct {
		typ  string
		dims int
		in   string
	}{
		{"int4", 0, "2147483648"}, {"int4", 0, "1.5"}, {"int8", 0, ""}, {"float8", 0, "abc"},
		{"numeric", 0, "1.2.3"}, {"numeric", 0, "--1"}, {"numeric", 0, "."}, {"bool", 0, "yes"},
		{"timestamptz", 0, "2024-13-01 00:00:00+00"}, {"timestamptz", 0, "2024-02-30 00:00:00"},
		{"timestamp", 0, "2024-01-01"}, {"date", 0, "24-01-01"}, {"time", 0, "25:00:00"},
		{"time", 0, "12:00"}, {"interval", 0, "1 day"}, {"interval", 0, "P1.5D"}, {"json", 0, "{"},
		{"bytea", 0, "0001"}, {"bytea", 0, `\x0`},
		{"int4", 1, "{1,2"}, {"int4", 1, "{1,,2}"}, {"int4", 1, "{{1},2}"}, {"int4", 1, "{1}x"},
		{"text", 1, `{"a}`}, {"text", 1, `{a"b}`}, {"int4", 1, "{a}"}, {"int4", 1, "1,2"},
		{"text", 1, `{a\`}, {"int4", 1, "[1:2]{1,2}"},
	}
	for _, tt := range tests {
		if v, err := (Column{Type: tt.typ, Dims: tt.dims}).Parse(tt.in); !errors.Is(err, ErrInvalidValue) {
			t.Errorf("%s[%d] %q = %v, %v; want ErrInvalidValue", tt.typ, tt.dims, tt.in, v, err)
		}
	}
}

func TestDecimalMethods(t *testing.T) {
	d, _ := ParseDecimal("-12.340")
	r, ok := d.Rat()
	if !ok || r.FloatString(3) != "-12.340" || d.Float64() != -12.34 || d.IsNaN() || d.IsInf(0) {
		t.Errorf("Decimal -12.340: %v %v %v", r, ok, d.Float64())
	}
	if _, ok := Decimal("Infinity").Rat(); ok || !Decimal("Infinity").IsInf(1) || Decimal("Infinity").IsInf(-1) {
		t.Error("Decimal Infinity")
	}
}

func TestIntervalString(t *testing.T) {
	for _, s := range []string{"PT0S", "P1Y2M3DT4H5M6.5S", "P-1Y-2M3DT-4H-5M-6.000001S", "P3D", "PT0.5S", "P1M"} {
		iv, err := ParseInterval(s)
		if err != nil || iv.String() != s {
			t.Errorf("ParseInterval(%q) = %v (%q), %v", s, iv, iv.String(), err)
		}
	}
	if s := TimeOfDay(13*time.Hour + 250*time.Millisecond).String(); s != "13:00:00.25" {
		t.Errorf("TimeOfDay = %q", s)
	}
}

// formatArray writes v (from parseArray with text elements) as a literal,
// quoting every element.
func formatArray(v []any) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, e := range v {
		if i > 0 {
			b.WriteByte(',')
		}
		switch e := e.(type) {
		case nil:
			b.WriteString("NULL")
		case []any:
			b.WriteString(formatArray(e))
		case string:
			b.WriteString(`"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(e) + `"`)
		}
	}
	b.WriteByte('}')
	return b.String()
}

func parseText(s string) (any, error) { return s, nil }

func FuzzParseArray(f *testing.F) {
	for _, s := range []string{
		"{}", "{1,2,3}", "{{1,2},{3,4}}", `{"a \"b\"",NULL,"NULL",null,"",c\,d,  x y  }`,
		"[0:1]={7,8}", `{"\\",\"}`, "{{}}", "{ {a} , {b} }", `{"{\"foo\": 1}"}`, "{a\\ }",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseArray(s, ',', parseText)
		if err != nil {
			return
		}
		again, err := parseArray(formatArray(v), ',', parseText)
		if err != nil {
			t.Fatalf("%q parsed to %#v, whose literal %q does not parse: %v", s, v, formatArray(v), err)
		}
		if !reflect.DeepEqual(v, again) {
			t.Fatalf("%q: %#v != %#v after a round trip", s, v, again)
		}
	})
}
