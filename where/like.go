package where

import "unicode/utf8"

const (
	likeFalse = iota
	likeTrue
	likeAbort
)

// likeMatch implements LIKE (and, with lowered inputs, ILIKE) exactly as
// Postgres' MatchText does for UTF-8: '%' any run, '_' one character,
// backslash escapes the next pattern byte. Its cost is up to the product
// of the lengths (when both come from the row); past maxLikeSteps (plus
// 16 per character of the operands) it fails with ErrTooCostly.
func likeMatch(t, p string) (bool, error) {
	m := likeMatcher{left: maxLikeSteps + 16*(len(t)+len(p))}
	r, err := m.matchText(t, p)
	return r == likeTrue, err
}

// maxLikeSteps bounds the characters one LIKE compares (about ten
// milliseconds).
const maxLikeSteps = 1 << 24

type likeMatcher struct{ left int }

var errLikeCostly = costErrorf("too costly to evaluate: LIKE compares more than %d characters", maxLikeSteps)

func (m *likeMatcher) matchText(t, p string) (int, error) {
	for len(t) > 0 && len(p) > 0 {
		if m.left--; m.left < 0 {
			return 0, errLikeCostly
		}
		switch p[0] {
		case '\\':
			p = p[1:]
			if len(p) == 0 {
				return 0, errorf("LIKE pattern must not end with escape character")
			}
			if p[0] != t[0] {
				return likeFalse, nil
			}
		case '%':
			return m.matchPercent(t, p[1:])
		case '_':
			_, n := utf8.DecodeRuneInString(t)
			t, p = t[n:], p[1:]
			continue
		default:
			if p[0] != t[0] {
				return likeFalse, nil
			}
		}
		t, p = t[1:], p[1:]
	}
	if len(t) > 0 {
		return likeFalse, nil
	}
	for len(p) > 0 && p[0] == '%' {
		p = p[1:]
	}
	if len(p) == 0 {
		return likeTrue, nil
	}
	return likeAbort, nil
}

// matchPercent handles the pattern after a '%'.
func (m *likeMatcher) matchPercent(t, p string) (int, error) {
	for len(p) > 0 {
		if p[0] == '%' {
			p = p[1:]
		} else if p[0] == '_' {
			if len(t) == 0 {
				return likeAbort, nil
			}
			_, n := utf8.DecodeRuneInString(t)
			t, p = t[n:], p[1:]
		} else {
			break
		}
	}
	if len(p) == 0 {
		return likeTrue, nil
	}
	first := p[0]
	if first == '\\' {
		if len(p) < 2 {
			return 0, errorf("LIKE pattern must not end with escape character")
		}
		first = p[1]
	}
	for len(t) > 0 {
		if m.left--; m.left < 0 {
			return 0, errLikeCostly
		}
		if t[0] == first {
			r, err := m.matchText(t, p)
			if err != nil || r != likeFalse {
				return r, err
			}
		}
		_, n := utf8.DecodeRuneInString(t)
		t = t[n:]
	}
	return likeAbort, nil
}

// asciiLower and asciiUpper are lower()/upper() under the C locale.
func asciiLower(s string) string { return mapASCII(s, 'A', 'Z', 32) }
func asciiUpper(s string) string { return mapASCII(s, 'a', 'z', -32) }

func mapASCII(s string, lo, hi byte, delta int) string {
	b := []byte(s)
	for i, c := range b {
		if c >= lo && c <= hi {
			b[i] = byte(int(c) + delta)
		}
	}
	return string(b)
}
