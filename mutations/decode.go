package mutations

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/voltsync/volt"
)

// field checks the value of one field of a request object (nil: any value).
type field func(d *json.Decoder, path string) error

var (
	mutationFields = map[string]field{
		"op": nil, "table": nil, "key": columnsField, "values": columnsField, "original": columnsField, "name": nil, "args": nil,
	}
	transactionFields = map[string]field{"seq": nil, "mutations": arrayOf(mutationFields)}
	requestFields     = map[string]field{"client_id": nil, "transactions": arrayOf(transactionFields), "wait": nil}
)

// errStop ends the walk where the JSON itself is broken: the decoder
// reports that.
var errStop = errors.New("stop")

// checkKeys refuses what encoding/json would silently fold: a field name
// spelt in another case ("Client_id"), which a proxy inspecting the body
// would not take for the field volt uses; a field given twice; and a
// column named twice in key, values or original. Unknown fields are
// ignored; types are left to the decoder.
func checkKeys(body []byte) error {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := object(d, "", requestFields); err != nil && err != errStop {
		return err
	}
	return nil
}

// object walks an object whose field names are fields (nil: a column map,
// any names).
func object(d *json.Decoder, path string, fields map[string]field) error {
	tok, err := d.Token()
	if err != nil {
		return errStop
	}
	if tok != json.Delim('{') {
		return skip(d, tok)
	}
	seen := map[string]bool{}
	for d.More() {
		kt, err := d.Token()
		if err != nil {
			return errStop
		}
		k, _ := kt.(string)
		if seen[k] {
			if fields == nil {
				return fmt.Errorf("%scolumn %q is given twice", path, k)
			}
			return fmt.Errorf("field %s%s is given twice", path, k)
		}
		seen[k] = true
		check, known := fields[k]
		if !known && fields != nil {
			for name := range fields {
				if strings.EqualFold(name, k) {
					return fmt.Errorf("unknown field %s%q: field names are case-sensitive (%s)", path, k, name)
				}
			}
		}
		if check == nil {
			tok, err := d.Token()
			if err != nil {
				return errStop
			}
			err = skip(d, tok)
		} else {
			err = check(d, path+k+".")
		}
		if err != nil {
			return err
		}
	}
	if _, err := d.Token(); err != nil {
		return errStop
	}
	return nil
}

func columnsField(d *json.Decoder, path string) error { return object(d, path, nil) }

// arrayOf walks an array of objects with fields.
func arrayOf(fields map[string]field) field {
	return func(d *json.Decoder, path string) error {
		tok, err := d.Token()
		if err != nil {
			return errStop
		}
		if tok != json.Delim('[') {
			return skip(d, tok)
		}
		for i := 0; d.More(); i++ {
			if err := object(d, fmt.Sprintf("%s%d.", path, i), fields); err != nil {
				return err
			}
		}
		if _, err := d.Token(); err != nil {
			return errStop
		}
		return nil
	}
}

// skip skips the rest of a value whose first token is tok.
func skip(d *json.Decoder, tok json.Token) error {
	if tok != json.Delim('{') && tok != json.Delim('[') {
		return nil
	}
	for depth := 1; depth > 0; {
		t, err := d.Token()
		if err != nil {
			return errStop
		}
		switch t {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
	return nil
}

// dropEmpty makes an empty key, values or original the same as none, as
// clients that omit empty objects send it.
func dropEmpty(req *volt.MutationRequest) {
	for i := range req.Transactions {
		for j := range req.Transactions[i].Mutations {
			m := &req.Transactions[i].Mutations[j]
			if len(m.Key) == 0 {
				m.Key = nil
			}
			if len(m.Values) == 0 {
				m.Values = nil
			}
			if len(m.Original) == 0 {
				m.Original = nil
			}
		}
	}
}
