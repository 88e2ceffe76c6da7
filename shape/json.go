package shape

import (
	"strconv"
	"unicode/utf8"
	"unsafe"
)

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string (appendJSONBytes escapes it;
// the slice only aliases s for reading).
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = appendJSONBytes(dst, unsafe.Slice(unsafe.StringData(s), len(s)), false)
	return append(dst, '"')
}

func appendUint(dst []byte, v uint64) []byte { return strconv.AppendUint(dst, v, 10) }

// appendQuotedUint appends v as a JSON string of decimal digits.
func appendQuotedUint(dst []byte, v uint64) []byte {
	dst = append(dst, '"')
	dst = strconv.AppendUint(dst, v, 10)
	return append(dst, '"')
}

// plainJSON[c] is true for the ASCII bytes a JSON string holds as they
// are (appendJSONBytes' fast path).
var plainJSON = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendJSONBytes appends b escaped as the inside of a JSON string,
// without the quotes: ", \ and control characters escaped, invalid UTF-8
// as U+FFFD, U+2028/U+2029 escaped for JavaScript; with slash, every '/'
// is doubled as in a message key's value parts.
func appendJSONBytes(dst, b []byte, slash bool) []byte {
	start := 0
	for i := 0; i < len(b); {
		c := b[i]
		if plainJSON[c] && !(slash && c == '/') {
			i++
			continue
		}
		dst = append(dst, b[start:i]...)
		switch {
		case c == '/':
			dst = append(dst, '/', '/')
			i++
		case c < utf8.RuneSelf:
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			switch {
			case r == utf8.RuneError && size == 1:
				dst = append(dst, `\ufffd`...)
			case r == '\u2028' || r == '\u2029':
				dst = append(dst, `\u202`...)
				dst = append(dst, hexDigits[r&0xf])
			default:
				dst = append(dst, b[i:i+size]...)
			}
			i += size
		}
		start = i
	}
	return append(dst, b[start:]...)
}
