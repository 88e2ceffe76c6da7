package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/voltsync/volt/httpapi"
	"github.com/voltsync/volt/shape"
)

// shapeTokenType is the "typ" header of shape tokens. It tells them apart
// from user JWTs, which are verified with other keys anyway: a shape token
// is never accepted as a user JWT, nor the reverse.
const shapeTokenType = "volt-shape"

// DefaultShapeTokenTTL is how long a shape token is valid (at most as long
// as the user token it was issued for).
const DefaultShapeTokenTTL = 10 * time.Minute

// ShapeTokens issues and verifies shape tokens: HS256 tokens, signed with
// a server key, that bind one shape definition (table, where, params,
// columns, replica) to the claims of the user token they were issued for.
// This is Electric's gatekeeper flow without application code.
type ShapeTokens struct {
	key    []byte
	ttl    time.Duration
	now    func() time.Time
	parser *jwt.Parser
}

// DeriveShapeTokenKey derives the shape token key from a server secret (the
// HS256 JWT secret or the API secret), so that every volt with the same
// secret accepts the same tokens, while the key itself differs from the
// secret. An empty secret gives a random key: tokens then die with the
// process.
func DeriveShapeTokenKey(secret string) []byte {
	if secret == "" {
		k := make([]byte, 32)
		_, _ = rand.Read(k)
		return k
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("volt shape tokens v1"))
	return m.Sum(nil)
}

// NewShapeTokens returns shape tokens signed with key (32 bytes or more),
// valid for ttl (DefaultShapeTokenTTL when 0); now is the clock (nil:
// time.Now).
func NewShapeTokens(key []byte, ttl time.Duration, now func() time.Time) (*ShapeTokens, error) {
	if len(key) < minSecretBytes {
		return nil, fmt.Errorf("the shape token key is %d bytes; it must be at least %d", len(key), minSecretBytes)
	}
	if ttl <= 0 {
		ttl = DefaultShapeTokenTTL
	}
	if now == nil {
		now = time.Now
	}
	return &ShapeTokens{
		key: key, ttl: ttl, now: now,
		parser: jwt.NewParser(jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithJSONNumber(),
			jwt.WithExpirationRequired(), jwt.WithLeeway(5*time.Second), jwt.WithTimeFunc(now)),
	}, nil
}

// boundShape is the shape a token is bound to, and its user's claims.
type boundShape struct {
	Table   string            `json:"table"` // "schema.name"
	Where   string            `json:"where,omitempty"`
	Params  map[string]string `json:"params,omitempty"`
	Columns []string          `json:"columns,omitempty"`
	AllCols bool              `json:"all_columns"` // no columns parameter
	Replica string            `json:"replica"`

	claims Claims
}

func bindShape(def *shape.Definition, claims Claims) *boundShape {
	return &boundShape{
		Table: def.Schema + "." + def.Table, Where: def.Where, Params: def.Params,
		Columns: def.Columns, AllCols: def.Columns == nil, Replica: replicaOf(def.Replica), claims: claims,
	}
}

func replicaOf(r string) string {
	if r == "" {
		return shape.ReplicaDefault
	}
	return r
}

// matches refuses a request whose shape parameters differ from the token's.
func (b *boundShape) matches(req *httpapi.ReadRequest) error {
	d := req.Def
	var differs []string
	if d.Table == "" || d.Schema+"."+d.Table != b.Table {
		differs = append(differs, "table")
	}
	if d.Where != b.Where {
		differs = append(differs, "where")
	}
	if len(d.Params) != len(b.Params) || !maps.Equal(d.Params, b.Params) {
		differs = append(differs, "params")
	}
	if (d.Columns == nil) != b.AllCols || (d.Columns != nil && !slices.Equal(d.Columns, b.Columns)) {
		differs = append(differs, "columns")
	}
	if replicaOf(d.Replica) != b.Replica {
		differs = append(differs, "replica")
	}
	if len(differs) > 0 {
		return forbiddenRead("the request's %s differ from the shape token's shape", strings.Join(differs, ", "))
	}
	return nil
}

// issue signs a token for def and claims; it expires after the TTL, and
// never after the user token (its exp claim).
func (s *ShapeTokens) issue(def *shape.Definition, claims Claims) (string, time.Time, error) {
	now := s.now()
	exp := now.Add(s.ttl).Truncate(time.Second)
	if n, ok := claims["exp"].(json.Number); ok {
		if f, err := n.Float64(); err == nil {
			if userExp := time.Unix(int64(f), 0); userExp.Before(exp) {
				exp = userExp
			}
		}
	}
	b := bindShape(def, claims)
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iat": now.Unix(), "exp": exp.Unix(), "shape": b, "claims": map[string]any(claims),
	})
	tok.Header["typ"] = shapeTokenType
	signed, err := tok.SignedString(s.key)
	return signed, exp, err
}

// verify checks a shape token and returns its bound shape and claims.
func (s *ShapeTokens) verify(token string) (*boundShape, error) {
	if len(token) > maxTokenBytes {
		return nil, fmt.Errorf("shape token longer than %d bytes", maxTokenBytes)
	}
	mc := jwt.MapClaims{}
	_, err := s.parser.ParseWithClaims(token, mc, func(t *jwt.Token) (any, error) {
		if t.Header["typ"] != shapeTokenType {
			return nil, errors.New("not a shape token")
		}
		return s.key, nil
	})
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, errors.New("shape token expired")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return nil, errors.New("invalid shape token signature")
	case err != nil:
		return nil, errors.New("invalid shape token")
	}
	raw, err := json.Marshal(mc["shape"])
	if err != nil {
		return nil, errors.New("invalid shape token")
	}
	b := &boundShape{}
	if err := json.Unmarshal(raw, b); err != nil || b.Table == "" {
		return nil, errors.New("invalid shape token")
	}
	if c, ok := mc["claims"].(map[string]any); ok {
		b.claims = c
	} else {
		b.claims = Claims{}
	}
	return b, nil
}

// isShapeToken reports whether token's header says it is a shape token.
func isShapeToken(token string) bool {
	head, _, ok := strings.Cut(token, ".")
	if !ok {
		return false
	}
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return false
	}
	var h struct {
		Typ string `json:"typ"`
	}
	return json.Unmarshal(raw, &h) == nil && h.Typ == shapeTokenType
}

// shapeTokenRequest is the body of POST /v1/shape-token: the shape's
// parameters as the client will send them to GET /v1/shape.
type shapeTokenRequest struct {
	Table   string                     `json:"table"`
	Where   string                     `json:"where"`
	Params  map[string]json.RawMessage `json:"params"`
	Columns json.RawMessage            `json:"columns"` // "a,b" or ["a","b"]
	Replica string                     `json:"replica"`
}

// TokenHandler serves POST /v1/shape-token: given a valid user JWT
// (Authorization: Bearer) and a shape definition the read rules allow, it
// answers {"token": "…", "expires_at": "<RFC 3339>"}. p.Tokens and
// p.Verifier must be set.
func (p *ReadPolicy) TokenHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("cache-control", "no-store")
		if r.Method != http.MethodPost {
			w.Header().Set("allow", "POST, OPTIONS")
			writeTokenJSON(w, http.StatusMethodNotAllowed, map[string]string{"message": "Method not allowed", "code": "method_not_allowed"})
			return
		}
		def, msg := parseShapeTokenRequest(r)
		if msg != "" {
			writeTokenJSON(w, http.StatusBadRequest, map[string]string{"message": msg, "code": "invalid_request"})
			return
		}
		claims, bound, err := p.principal(r)
		if err == nil && bound != nil {
			err = unauthorizedRead("a shape token cannot be exchanged for another; present the user token")
		}
		if err == nil && claims == nil {
			err = unauthorizedRead("missing Authorization: Bearer token")
		}
		if err == nil {
			narrowed := *def
			err = p.authorize(claims, &narrowed, nil)
		}
		if err != nil {
			re := readError(err)
			body := map[string]string{"message": re.Message, "code": re.Code}
			if re.Field != "" {
				body["code"] = "invalid_request"
				body["message"] = re.Field + ": " + re.Message
			}
			writeTokenJSON(w, re.Status, body)
			return
		}
		token, exp, err := p.Tokens.issue(def, claims)
		if err != nil {
			writeTokenJSON(w, http.StatusInternalServerError, map[string]string{"error": "Internal server error"})
			return
		}
		writeTokenJSON(w, http.StatusOK, map[string]string{"token": token, "expires_at": exp.UTC().Format(time.RFC3339)})
	})
}

func parseShapeTokenRequest(r *http.Request) (*shape.Definition, string) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return nil, "cannot read the request body"
	}
	var req shapeTokenRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, "the body must be a JSON object with the shape's table, where, params, columns and replica"
	}
	if req.Table == "" {
		return nil, "table: can't be blank"
	}
	def := &shape.Definition{Where: req.Where, Replica: replicaOf(req.Replica), Log: shape.LogFull}
	if def.Schema, def.Table, err = shape.ParseRelation(req.Table); err != nil {
		return nil, "table: " + err.Error()
	}
	if def.Replica != shape.ReplicaDefault && def.Replica != shape.ReplicaFull {
		return nil, "replica: is invalid"
	}
	if len(req.Params) > 0 {
		def.Params = map[string]string{}
		for k, v := range req.Params {
			var s string
			if json.Unmarshal(v, &s) != nil {
				var n json.Number
				if json.Unmarshal(v, &n) != nil {
					return nil, "params: parameter " + k + " must be a string or a number"
				}
				s = n.String()
			}
			def.Params[k] = s
		}
	}
	if c := strings.TrimSpace(string(req.Columns)); c != "" && c != "null" {
		var list []string
		var text string
		switch {
		case json.Unmarshal(req.Columns, &list) == nil:
			def.Columns = list
		case json.Unmarshal(req.Columns, &text) == nil:
			if def.Columns, err = shape.ParseColumns(text); err != nil {
				return nil, "columns: " + err.Error()
			}
		default:
			return nil, `columns: must be "a,b" or ["a","b"]`
		}
	}
	return def, ""
}

func writeTokenJSON(w http.ResponseWriter, status int, body any) {
	b, _ := json.Marshal(body)
	w.Header().Set("content-type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
