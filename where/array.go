package where

import "strings"

// array is a Postgres array value: dimension lengths (all lower bounds 1)
// and the elements flattened in row-major order; nil elements are NULLs.
type array struct {
	dims  []int
	elems []any
}

// arrayScanner parses Postgres' array literal syntax.
type arrayScanner struct {
	s    string
	pos  int
	elem Type
}

// parseArray implements array_in for element type elem.
func parseArray(s string, elem Type) (*array, error) {
	sc := &arrayScanner{s: strings.TrimSpace(s), elem: elem}
	if strings.HasPrefix(sc.s, "[") {
		return nil, errorf("array literals with explicit bounds are not supported: %q", s)
	}
	a := &array{}
	dims, err := sc.parseLevel(a, 0)
	if err != nil {
		return nil, errorf("malformed array literal: %q", s)
	}
	if sc.pos != len(sc.s) {
		return nil, errorf("malformed array literal: %q", s)
	}
	if len(a.elems) == 0 {
		dims = nil
	}
	a.dims = dims
	for i, raw := range a.elems {
		if raw == nil {
			continue
		}
		v, err := parseValue(raw.(string), elem)
		if err != nil {
			return nil, err
		}
		a.elems[i] = v
	}
	return a, nil
}

func (sc *arrayScanner) skipSpace() {
	for sc.pos < len(sc.s) && isArraySpace(sc.s[sc.pos]) {
		sc.pos++
	}
}

func isArraySpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// parseLevel parses one {...} level, appending raw element strings (or nil)
// to a.elems and returning the dimensions of this level.
func (sc *arrayScanner) parseLevel(a *array, depth int) ([]int, error) {
	sc.skipSpace()
	if sc.pos >= len(sc.s) || sc.s[sc.pos] != '{' || depth > 6 {
		return nil, errorf("bad")
	}
	sc.pos++
	sc.skipSpace()
	if sc.pos < len(sc.s) && sc.s[sc.pos] == '}' {
		sc.pos++
		return []int{0}, nil
	}
	var sub []int
	n := 0
	for {
		sc.skipSpace()
		if sc.pos < len(sc.s) && sc.s[sc.pos] == '{' {
			d, err := sc.parseLevel(a, depth+1)
			if err != nil || (sub != nil && !equalDims(sub, d)) || (n > 0 && sub == nil) {
				return nil, errorf("bad")
			}
			sub = d
		} else {
			if sub != nil {
				return nil, errorf("bad")
			}
			if err := sc.element(a); err != nil {
				return nil, err
			}
		}
		n++
		sc.skipSpace()
		if sc.pos >= len(sc.s) {
			return nil, errorf("bad")
		}
		c := sc.s[sc.pos]
		sc.pos++
		if c == '}' {
			break
		}
		if c != ',' {
			return nil, errorf("bad")
		}
	}
	return append([]int{n}, sub...), nil
}

func equalDims(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// element scans one quoted or unquoted element.
func (sc *arrayScanner) element(a *array) error {
	var b strings.Builder
	quoted, any := false, false
	lastNonSpace := 0
	for sc.pos < len(sc.s) {
		c := sc.s[sc.pos]
		switch {
		case c == '"':
			if any && !quoted {
				return errorf("bad")
			}
			quoted = true
			sc.pos++
			if err := sc.quoted(&b); err != nil {
				return err
			}
			lastNonSpace = b.Len()
			any = true
			continue
		case c == '\\':
			if sc.pos+1 >= len(sc.s) {
				return errorf("bad")
			}
			b.WriteByte(sc.s[sc.pos+1])
			sc.pos += 2
			lastNonSpace, any = b.Len(), true
			continue
		case c == ',' || c == '}':
			return sc.finishElement(a, b.String()[:lastNonSpace], quoted, any)
		case quoted && isArraySpace(c):
			sc.pos++
			continue
		case c == '{' || quoted:
			return errorf("bad")
		}
		b.WriteByte(c)
		if !isArraySpace(c) {
			lastNonSpace = b.Len()
		}
		any = true
		sc.pos++
	}
	return errorf("bad")
}

func (sc *arrayScanner) quoted(b *strings.Builder) error {
	for sc.pos < len(sc.s) {
		c := sc.s[sc.pos]
		sc.pos++
		switch c {
		case '"':
			return nil
		case '\\':
			if sc.pos >= len(sc.s) {
				return errorf("bad")
			}
			c = sc.s[sc.pos]
			sc.pos++
		}
		b.WriteByte(c)
	}
	return errorf("bad")
}

func (sc *arrayScanner) finishElement(a *array, v string, quoted, any bool) error {
	if !any {
		return errorf("bad")
	}
	if !quoted && strings.EqualFold(v, "NULL") {
		a.elems = append(a.elems, nil)
		return nil
	}
	a.elems = append(a.elems, v)
	return nil
}

// formatArray implements array_out.
func formatArray(a *array, elem Type) string {
	if len(a.elems) == 0 {
		return "{}"
	}
	var b strings.Builder
	idx := 0
	var level func(d int)
	level = func(d int) {
		b.WriteByte('{')
		for i := 0; i < a.dims[d]; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			if d+1 < len(a.dims) {
				level(d + 1)
				continue
			}
			writeArrayElem(&b, a.elems[idx], elem)
			idx++
		}
		b.WriteByte('}')
	}
	level(0)
	return b.String()
}

func writeArrayElem(b *strings.Builder, v any, elem Type) {
	if v == nil {
		b.WriteString("NULL")
		return
	}
	s := outputValue(v, elem)
	need := s == "" || strings.EqualFold(s, "NULL")
	for i := 0; i < len(s) && !need; i++ {
		c := s[i]
		need = c == '"' || c == '\\' || c == '{' || c == '}' || c == ',' || isArraySpace(c)
	}
	if !need {
		b.WriteString(s)
		return
	}
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
}
