package client

import (
	"fmt"
	"strings"
)

// arrayDelim returns the element delimiter of arrays of typ: Postgres uses
// ';' for box and ',' for every other built-in type.
func arrayDelim(typ string) byte {
	if typ == "box" {
		return ';'
	}
	return ','
}

// parseArray parses a Postgres array literal ("{1,2,NULL}",
// `{"a \"b\"",c}`, "{{1,2},{3,4}}", "[0:1]={7,8}") into nested []any,
// converting each non-NULL element with elem.
func parseArray(s string, delim byte, elem parseFunc) ([]any, error) {
	p := &arrayParser{s: s, delim: delim, elem: elem}
	if err := p.skipBounds(); err != nil {
		return nil, err
	}
	p.skipSpace()
	v, err := p.array()
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.i != len(p.s) {
		return nil, p.errorf("junk after closing brace")
	}
	return v, nil
}

type arrayParser struct {
	s     string
	i     int
	delim byte
	elem  parseFunc
}

func (p *arrayParser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w array %q at %d: %s", ErrInvalidValue, p.s, p.i, fmt.Sprintf(format, args...))
}

func (p *arrayParser) peek(c byte) bool { return p.i < len(p.s) && p.s[p.i] == c }

func (p *arrayParser) eat(c byte) bool {
	if p.peek(c) {
		p.i++
		return true
	}
	return false
}

func isArraySpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func (p *arrayParser) skipSpace() {
	for p.i < len(p.s) && isArraySpace(p.s[p.i]) {
		p.i++
	}
}

// skipBounds skips a leading dimension decoration such as "[0:2][1:3]=".
func (p *arrayParser) skipBounds() error {
	if !p.peek('[') {
		return nil
	}
	for p.eat('[') {
		j := strings.IndexByte(p.s[p.i:], ']')
		if j < 0 {
			return p.errorf("unterminated dimension")
		}
		p.i += j + 1
	}
	if !p.eat('=') {
		return p.errorf("missing = after dimensions")
	}
	return nil
}

// array parses "{item,item,…}".
func (p *arrayParser) array() ([]any, error) {
	if !p.eat('{') {
		return nil, p.errorf("expected {")
	}
	out := []any{}
	p.skipSpace()
	if p.eat('}') {
		return out, nil
	}
	nested := p.peek('{')
	for {
		p.skipSpace()
		if p.peek('{') != nested {
			return nil, p.errorf("mixed arrays and scalars")
		}
		v, err := p.item()
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		p.skipSpace()
		if p.eat('}') {
			return out, nil
		}
		if !p.eat(p.delim) {
			return nil, p.errorf("expected %q or }", p.delim)
		}
	}
}

// item parses one element: a sub-array, a quoted or an unquoted string.
func (p *arrayParser) item() (any, error) {
	if p.peek('{') {
		return p.array()
	}
	var text string
	var err error
	if p.peek('"') {
		text, err = p.quoted()
	} else {
		var null bool
		text, null, err = p.unquoted()
		if null {
			return nil, nil
		}
	}
	if err != nil {
		return nil, err
	}
	return p.elem(text)
}

// quoted parses a double-quoted element with backslash escapes.
func (p *arrayParser) quoted() (string, error) {
	p.i++ // opening quote
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch c {
		case '"':
			return b.String(), nil
		case '\\':
			if p.i == len(p.s) {
				return "", p.errorf("unterminated escape")
			}
			c = p.s[p.i]
			p.i++
		}
		b.WriteByte(c)
	}
	return "", p.errorf("unterminated quoted element")
}

// unquoted parses an unquoted element up to the delimiter or closing brace,
// trimming unescaped surrounding space. An unescaped NULL (any case) is
// NULL.
func (p *arrayParser) unquoted() (text string, null bool, err error) {
	var b strings.Builder
	keep, escaped := 0, false // keep: length without trailing unescaped space
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c == p.delim || c == '}' {
			break
		}
		if c == '{' || c == '"' {
			return "", false, p.errorf("unexpected %q", c)
		}
		p.i++
		if c == '\\' {
			if p.i == len(p.s) {
				return "", false, p.errorf("unterminated escape")
			}
			c, escaped = p.s[p.i], true
			p.i++
			b.WriteByte(c)
			keep = b.Len()
			continue
		}
		b.WriteByte(c)
		if !isArraySpace(c) {
			keep = b.Len()
		}
	}
	text = b.String()[:keep]
	if text == "" && !escaped {
		return "", false, p.errorf("empty element")
	}
	return text, !escaped && strings.EqualFold(text, "NULL"), nil
}
