package httpapi

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/voltsync/volt"
	"github.com/voltsync/volt/shape"
)

// request is a parsed GET /v1/shape request.
type request struct {
	table     string // as given
	offset    volt.Offset
	now       bool // offset=now
	rawOffset string
	handle    string
	live      bool
	sse       bool
	cursor    string
	def       shape.Definition
	tableSet  bool
	ruled     bool // read rules decided the request (withRuled)
}

// fieldErrors collects validation messages per parameter, as Electric's
// 400 body reports them.
type fieldErrors map[string][]string

func (f fieldErrors) add(field, msg string) { f[field] = append(f[field], msg) }

// parseRequest validates the parameters that need no database, in
// Electric's order.
func parseRequest(q url.Values) (*request, fieldErrors) {
	errs := fieldErrors{}
	req := &request{}
	req.rawOffset = q.Get(volt.ParamOffset)
	switch {
	case !q.Has(volt.ParamOffset) || req.rawOffset == "":
		errs.add("offset", "can't be blank")
	case req.rawOffset == "now":
		req.now = true
	default:
		o, err := volt.ParseOffset(req.rawOffset)
		if err != nil {
			errs.add("offset", "has invalid format")
		}
		req.offset = o
	}
	initial := req.now || req.rawOffset == "-1"
	if !initial {
		req.handle = q.Get(volt.ParamHandle)
	}
	if len(errs) == 0 && !initial && req.handle == "" {
		errs.add("handle", "can't be blank when offset != -1")
	}
	req.live = boolish(q, volt.ParamLive)
	req.sse = boolish(q, volt.ParamLiveSSE)
	if !q.Has(volt.ParamLiveSSE) && q.Get(volt.ParamExperimentalLiveSSE) == "true" {
		req.sse = true
	}
	if req.live && req.rawOffset == "-1" {
		errs.add("live", "can't be true when offset == -1")
	}
	if req.live && req.now {
		errs.add("live", "can't be true when offset is 'now'")
	}
	if req.sse && !req.live {
		errs.add("live_sse", "can't be true unless live is also true")
	}
	req.cursor = q.Get(volt.ParamCursor)
	parseDefinition(q, req, errs)
	return req, errs
}

// boolish mirrors Electric: a present key is true unless its value is "false".
func boolish(q url.Values, key string) bool {
	return q.Has(key) && q.Get(key) != "false"
}

func parseDefinition(q url.Values, req *request, errs fieldErrors) {
	def := &req.def
	req.table = q.Get(volt.ParamTable)
	req.tableSet = req.table != ""
	def.Where = q.Get(volt.ParamWhere)
	def.Replica = q.Get(volt.ParamReplica)
	switch def.Replica {
	case "":
		def.Replica = shape.ReplicaDefault
	case shape.ReplicaDefault, shape.ReplicaFull:
	default:
		errs.add("replica", "is invalid")
	}
	def.Log = q.Get(volt.ParamLog)
	switch def.Log {
	case "":
		def.Log = shape.LogFull
	case shape.LogFull, shape.LogChangesOnly:
	default:
		errs.add("log", "is invalid")
	}
	if q.Has(volt.ParamColumns) {
		cols, err := shape.ParseColumns(q.Get(volt.ParamColumns))
		if err != nil {
			errs.add("columns", err.Error())
		}
		def.Columns = cols
	}
	if q.Has(volt.ParamQueryableColumns) {
		cols, err := shape.ParseColumns(q.Get(volt.ParamQueryableColumns))
		if err != nil {
			errs.add("queryable_columns", err.Error())
		}
		def.Queryable = cols
	}
	params, msg := parseParams(q)
	if msg != "" {
		errs.add("params", msg)
	}
	def.Params = params
	for _, field := range []string{"table", "where", "columns", "queryable_columns"} {
		if msg := badText(q.Get(field)); msg != "" {
			errs.add(field, msg)
		}
	}
	for _, v := range params {
		if msg := badText(v); msg != "" {
			errs.add("params", msg)
			break
		}
	}
}

// badText says why s cannot be sent to Postgres as text ("" when it can):
// Postgres refuses NUL bytes and invalid UTF-8 in every text value, and
// that is the request's mistake, not a reason to retry.
func badText(s string) string {
	switch {
	case strings.IndexByte(s, 0) >= 0:
		return "must not contain a NUL byte"
	case !utf8.ValidString(s):
		return "must be valid UTF-8"
	}
	return ""
}

// systemSchemas are schemas whose tables are never shapes: Postgres'
// catalogs and volt's own bookkeeping (volt.receipts, which has its own
// read rule, aside).
var systemSchemas = map[string]bool{"pg_catalog": true, "information_schema": true, "pg_toast": true, "volt": true}

// systemTable reports whether schema.name is a table no shape may read.
func systemTable(schema, name string) bool {
	if schema == "volt" && name == "receipts" {
		return false
	}
	return systemSchemas[schema] || strings.HasPrefix(schema, "pg_temp") || strings.HasPrefix(schema, "pg_toast")
}

// parseParams reads params[1]=…&params[2]=… (deep-object style).
func parseParams(q url.Values) (map[string]string, string) {
	if q.Has(volt.ParamParams) {
		return nil, "is invalid"
	}
	var params map[string]string
	for k, v := range q {
		if !strings.HasPrefix(k, "params[") || !strings.HasSuffix(k, "]") {
			continue
		}
		name := k[len("params[") : len(k)-1]
		if params == nil {
			params = map[string]string{}
		}
		params[name] = v[0]
	}
	if params == nil {
		return nil, ""
	}
	nums := make([]int, 0, len(params))
	for name := range params {
		n, err := strconv.Atoi(name)
		if err != nil || n < 1 || strconv.Itoa(n) != name {
			return nil, "Parameters can only use numbers as keys"
		}
		nums = append(nums, n)
	}
	sort.Ints(nums)
	for i, n := range nums {
		if n != i+1 {
			return nil, "Parameters must be numbered sequentially, starting from 1"
		}
	}
	return params, ""
}

// secretOK checks ?secret= (or the legacy ?api_secret=) against the configured secret.
func secretOK(r *http.Request, secret string) bool {
	if secret == "" {
		return true
	}
	q := r.URL.Query()
	got := q.Get(volt.ParamSecret)
	if got == "" {
		got = q.Get(volt.ParamAPISecret)
	}
	return constantTimeEqual(got, secret)
}
