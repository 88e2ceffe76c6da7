package auth_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/voltsync/volt"
	"github.com/voltsync/volt/auth"
)

// TestTokens sends a write with each token through the handler: valid
// HS256, RS256 and ES256 tokens are accepted; every invalid one is a 401
// with a reason, and nothing is applied.
func TestTokens(t *testing.T) {
	k := getKeys(t)
	jc := fullConfig(t)
	e := newEnv(t, &jc, rulesJSON)
	valid := map[string]string{
		"HS256":                     hs256(t, claims("alice", nil)),
		"RS256":                     sign(t, jwt.SigningMethodRS256, k.rsa, claims("alice", nil)),
		"ES256":                     sign(t, jwt.SigningMethodES256, k.ec, claims("alice", nil)),
		"expired within the leeway": hs256(t, claims("alice", map[string]any{"exp": time.Now().Add(-5 * time.Second).Unix()})),
		"audience in a list":        hs256(t, claims("alice", map[string]any{"aud": []string{"other", "volt"}})),
	}
	n := 0
	for name, token := range valid {
		n++
		id := "t" + string(rune('0'+n))
		r := e.post(token, "c-"+id, insert("todos", map[string]any{"id": id, "owner_id": "alice"}))
		if r.Status != volt.StatusAccepted {
			t.Errorf("%s: %+v", name, r)
		}
	}

	otherRSA := getOtherRSA(t)
	invalid := []struct{ name, header, reason string }{
		{"no header", "", "missing Authorization"},
		{"basic", "Basic YWxpY2U6cHc=", "must be \"Bearer <token>\""},
		{"empty bearer", "Bearer ", "must be \"Bearer <token>\""},
		{"malformed", "Bearer not.a.jwt", "malformed token"},
		{"expired", "Bearer " + hs256(t, claims("alice", map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})), "token expired"},
		{"not yet valid", "Bearer " + hs256(t, claims("alice", map[string]any{"nbf": time.Now().Add(time.Hour).Unix()})), "token not valid yet"},
		{"no exp", "Bearer " + hs256(t, claims("alice", map[string]any{"exp": nil})), "exp claim"},
		{"wrong secret", "Bearer " + sign(t, jwt.SigningMethodHS256, []byte("another-secret-of-at-least-32-bytes!!"), claims("alice", nil)), "invalid token signature"},
		{"wrong RSA key", "Bearer " + sign(t, jwt.SigningMethodRS256, otherRSA, claims("alice", nil)), "invalid token signature"},
		{"alg none", "Bearer " + sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims("alice", nil)), "algorithm this server does not accept"},
		{"HS256 signed with the RSA public key", "Bearer " + sign(t, jwt.SigningMethodHS256, k.pemRSA, claims("alice", nil)), "invalid token signature"},
		{"RS512 (not configured)", "Bearer " + sign(t, jwt.SigningMethodRS512, k.rsa, claims("alice", nil)), "algorithm this server does not accept"},
		{"wrong issuer", "Bearer " + hs256(t, claims("alice", map[string]any{"iss": "https://evil.test"})), "another issuer"},
		{"no issuer", "Bearer " + hs256(t, claims("alice", map[string]any{"iss": nil})), "iss claim"},
		{"wrong audience", "Bearer " + hs256(t, claims("alice", map[string]any{"aud": "other"})), "another audience"},
	}
	for _, c := range invalid {
		t.Run(c.name, func(t *testing.T) {
			status, body := e.postRawHeader(c.header, "c-bad", insert("todos", map[string]any{"id": "bad", "owner_id": "alice"}))
			var me volt.MutationError
			_ = json.Unmarshal(body, &me)
			if status != http.StatusUnauthorized || me.Code != volt.CodeUnauthorized || !strings.Contains(me.Message, c.reason) {
				t.Fatalf("status %d body %s; want 401 mentioning %q", status, body, c.reason)
			}
		})
	}
	if got := e.count(`SELECT count(*) FROM todos WHERE id = 'bad'`); got != 0 {
		t.Fatalf("a refused request wrote %d rows", got)
	}
	if got := e.count(`SELECT count(*) FROM volt.clients WHERE client_id LIKE '%c-bad'`); got != 0 {
		t.Fatalf("a refused request created its client")
	}
}

// TestAlgorithmPinning verifies tokens against a verifier with only an RSA
// key: the HS256-with-public-key confusion and "none" are refused before
// any key is used, and ES256 without an EC key is refused too.
func TestAlgorithmPinning(t *testing.T) {
	k := getKeys(t)
	v, err := auth.NewVerifier(auth.JWTConfig{PublicKeysPEM: k.pemRSA})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(sign(t, jwt.SigningMethodRS256, k.rsa, claims("alice", nil))); err != nil {
		t.Fatalf("RS256: %v", err)
	}
	for name, token := range map[string]string{
		"HS256 with the public key": sign(t, jwt.SigningMethodHS256, k.pemRSA, claims("alice", nil)),
		"none":                      sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims("alice", nil)),
		"ES256":                     sign(t, jwt.SigningMethodES256, k.ec, claims("alice", nil)),
		"PS256 with the RSA key":    sign(t, jwt.SigningMethodPS256, k.rsa, claims("alice", nil)),
	} {
		if _, err := v.Verify(token); err == nil || !strings.Contains(err.Error(), "unauthorized") {
			t.Errorf("%s: accepted (err %v)", name, err)
		}
	}
}

// TestVerifierConfig refuses unusable key configurations at start.
func TestVerifierConfig(t *testing.T) {
	k := getKeys(t)
	priv := pemBlock("PRIVATE KEY", mustPKCS8(t, k.ec))
	for name, c := range map[string]struct {
		cfg  auth.JWTConfig
		want string
	}{
		"nothing":       {auth.JWTConfig{}, "no JWT key"},
		"short secret":  {auth.JWTConfig{Secret: []byte("short")}, "at least 32"},
		"not PEM":       {auth.JWTConfig{PublicKeysPEM: []byte("hello")}, "no PEM block"},
		"private key":   {auth.JWTConfig{PublicKeysPEM: priv}, "not the private one"},
		"P-384 key":     {auth.JWTConfig{PublicKeysPEM: p384PEM(t)}, "only P-256"},
		"small RSA key": {auth.JWTConfig{PublicKeysPEM: smallRSAPEM(t)}, "at least 2048"},
	} {
		if _, err := auth.NewVerifier(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", name, err, c.want)
		}
	}
}

// TestClaimsAreJSONNumbers keeps numeric claims exact.
func TestClaimsAreJSONNumbers(t *testing.T) {
	v, err := auth.NewVerifier(auth.JWTConfig{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(hs256(t, claims("alice", map[string]any{"big": json.Number("12345678901234567890")})))
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := c["big"].(json.Number); !ok || n.String() != "12345678901234567890" || c.Subject() != "alice" {
		t.Fatalf("claims %#v", c)
	}
}
