package auth

import (
	"fmt"
	"strconv"
	"strings"
)

// template is a rule's check with its $claims references cut out. The
// references become positional parameters ($1, $2, …) of where.Parse, so a
// claim's value is a typed constant and never part of the SQL text.
type template struct {
	parts []string   // len(refs)+1 pieces of SQL around the references
	refs  [][]string // claim paths: $claims.org.id is ["org", "id"]
	lens  []int      // the length of each reference as written
}

// render returns the clause with each reference replaced by $n, or by NULL
// where null[i] is set (a missing claim). Replacements are padded to the
// reference's length, so error locations still point into the rule.
func (t *template) render(null []bool) string { return t.renderFrom(null, 1) }

// renderFrom is render with the parameters numbered from first.
func (t *template) renderFrom(null []bool, first int) string {
	var b strings.Builder
	n := first - 1
	for i, p := range t.parts {
		b.WriteString(p)
		if i == len(t.refs) {
			break
		}
		sub := "NULL"
		if null == nil || !null[i] {
			n++
			sub = "$" + strconv.Itoa(n)
		}
		b.WriteString(sub)
		b.WriteString(strings.Repeat(" ", max(t.lens[i]-len(sub), 1)))
	}
	return b.String()
}

// parseTemplate finds the $claims references of clause outside string
// literals, quoted identifiers and comments. Positional parameters ($1) are
// refused: claims are the only parameters of a rule.
func parseTemplate(clause string) (*template, error) {
	s := &scanner{src: clause}
	t := &template{}
	start := 0
	for s.pos < len(s.src) {
		at := s.pos
		isRef, err := s.next()
		if err != nil {
			return nil, err
		}
		if !isRef {
			continue
		}
		path, err := s.claimPath()
		if err != nil {
			return nil, err
		}
		t.parts = append(t.parts, clause[start:at])
		t.refs = append(t.refs, path)
		t.lens = append(t.lens, s.pos-at)
		start = s.pos
	}
	t.parts = append(t.parts, clause[start:])
	return t, nil
}

// scanner walks a where clause with Postgres' lexical rules for what can
// hide a "$": literals, quoted identifiers, comments and identifiers.
type scanner struct {
	src string
	pos int
}

// next skips one token; it returns true, with pos after "$claims", when
// the token starts a claim reference.
func (s *scanner) next() (bool, error) {
	c := s.src[s.pos]
	switch {
	case c == '\'':
		return false, s.quoted('\'', s.escapes())
	case c == '"':
		return false, s.quoted('"', false)
	case strings.HasPrefix(s.src[s.pos:], "--"):
		s.lineComment()
	case strings.HasPrefix(s.src[s.pos:], "/*"):
		return false, s.blockComment()
	case c == '$':
		return s.dollar()
	case identStart(c):
		s.pos++
		for s.pos < len(s.src) && (identStart(s.src[s.pos]) || isDigit(s.src[s.pos]) || s.src[s.pos] == '$') {
			s.pos++
		}
	case isDigit(c):
		for s.pos < len(s.src) && (isDigit(s.src[s.pos]) || identStart(s.src[s.pos])) {
			s.pos++
		}
	default:
		s.pos++
	}
	return false, nil
}

// escapes reports whether the literal at pos is an escape string, E'…'
// (backslash escapes): the quote follows a lone E.
func (s *scanner) escapes() bool {
	p := s.pos
	if p == 0 || (s.src[p-1] != 'e' && s.src[p-1] != 'E') {
		return false
	}
	return p == 1 || !(identStart(s.src[p-2]) || isDigit(s.src[p-2]) || s.src[p-2] == '$')
}

func (s *scanner) quoted(q byte, backslash bool) error {
	open := s.pos
	s.pos++
	for s.pos < len(s.src) {
		c := s.src[s.pos]
		switch {
		case backslash && c == '\\':
			s.pos += 2
		case c == q && s.pos+1 < len(s.src) && s.src[s.pos+1] == q:
			s.pos += 2
		case c == q:
			s.pos++
			return nil
		default:
			s.pos++
		}
	}
	return fmt.Errorf("unterminated quoted string at position %d", open)
}

func (s *scanner) lineComment() {
	if i := strings.IndexByte(s.src[s.pos:], '\n'); i >= 0 {
		s.pos += i + 1
		return
	}
	s.pos = len(s.src)
}

func (s *scanner) blockComment() error {
	open, depth := s.pos, 0
	for s.pos < len(s.src) {
		switch {
		case strings.HasPrefix(s.src[s.pos:], "/*"):
			depth++
			s.pos += 2
		case strings.HasPrefix(s.src[s.pos:], "*/"):
			depth--
			s.pos += 2
			if depth == 0 {
				return nil
			}
		default:
			s.pos++
		}
	}
	return fmt.Errorf("unterminated comment at position %d", open)
}

// dollar handles a token starting with "$": a claim reference, a
// dollar-quoted string, or a positional parameter (refused).
func (s *scanner) dollar() (bool, error) {
	open := s.pos
	end := s.pos + 1
	for end < len(s.src) && (identStart(s.src[end]) || isDigit(s.src[end])) {
		end++
	}
	word := s.src[open+1 : end]
	switch {
	case end < len(s.src) && s.src[end] == '$' && (word == "" || !isDigit(word[0])):
		return false, s.dollarQuoted(s.src[open : end+1])
	case word != "" && isDigit(word[0]):
		return false, fmt.Errorf("positional parameter $%s at position %d: refer to claims as $claims.<name>", word, open)
	case strings.EqualFold(word, "claims"):
		s.pos = end
		return true, nil
	}
	return false, fmt.Errorf("unknown parameter $%s at position %d: the only parameters are $claims.<name>", word, open)
}

func (s *scanner) dollarQuoted(tag string) error {
	open := s.pos
	i := strings.Index(s.src[open+len(tag):], tag)
	if i < 0 {
		return fmt.Errorf("unterminated dollar-quoted string at position %d", open)
	}
	s.pos = open + len(tag) + i + len(tag)
	return nil
}

// claimPath reads the ".name" segments after $claims: plain identifiers
// (kept as written, claim names are case-sensitive) or "quoted" names
// such as $claims."https://example.com/org".
func (s *scanner) claimPath() ([]string, error) {
	open := s.pos - len("$claims")
	var path []string
	for s.pos < len(s.src) && s.src[s.pos] == '.' {
		s.pos++
		name, err := s.segment()
		if err != nil {
			return nil, fmt.Errorf("claim reference at position %d: %w", open, err)
		}
		path = append(path, name)
	}
	if len(path) == 0 {
		return nil, fmt.Errorf("claim reference at position %d: write $claims.<name>", open)
	}
	return path, nil
}

func (s *scanner) segment() (string, error) {
	if s.pos < len(s.src) && s.src[s.pos] == '"' {
		start := s.pos
		if err := s.quoted('"', false); err != nil {
			return "", err
		}
		name := strings.ReplaceAll(s.src[start+1:s.pos-1], `""`, `"`)
		if name == "" {
			return "", fmt.Errorf("empty claim name")
		}
		return name, nil
	}
	start := s.pos
	for s.pos < len(s.src) && (identStart(s.src[s.pos]) || isDigit(s.src[s.pos])) {
		s.pos++
	}
	if s.pos == start {
		return "", fmt.Errorf("a claim name must follow the dot")
	}
	return s.src[start:s.pos], nil
}

func identStart(c byte) bool { return c == '_' || c >= 0x80 || (c|0x20 >= 'a' && c|0x20 <= 'z') }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
