package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/voltsync/volt/mutations"
)

// DefaultLeeway is the clock skew allowed on exp and nbf.
const DefaultLeeway = 30 * time.Second

// maxTokenBytes bounds the bearer token accepted.
const maxTokenBytes = 16 << 10

// JWTConfig configures a Verifier. At least one of Secret and
// PublicKeysPEM must be set; each enables exactly its algorithms.
type JWTConfig struct {
	// Secret enables HS256 with this key (at least 32 bytes).
	Secret []byte
	// PublicKeysPEM enables RS256 (RSA keys) and ES256 (P-256 keys): one or
	// more PEM blocks. Every key of the token's algorithm is tried.
	PublicKeysPEM []byte
	// Issuer, when set, must equal the token's iss.
	Issuer string
	// Audience, when set, must be one of the token's aud values.
	Audience string
	// Leeway is the clock skew allowed on exp and nbf; DefaultLeeway when 0.
	Leeway time.Duration
	// Now is the clock (tests); time.Now when nil.
	Now func() time.Time
}

// Verifier checks bearer JWTs. The algorithm is pinned to the configured
// keys: "none" and any algorithm without a configured key are refused, and
// a key is only ever used with its own algorithm (an HS256 token signed
// with an RSA public key does not verify). exp is required.
type Verifier struct {
	secret []byte
	keys   *publicKeys
	parser *jwt.Parser
}

// NewVerifier checks the configuration and returns a Verifier.
func NewVerifier(cfg JWTConfig) (*Verifier, error) {
	v := &Verifier{}
	var algs []string
	if cfg.Secret != nil {
		if len(cfg.Secret) < minSecretBytes {
			return nil, fmt.Errorf("the HS256 secret is %d bytes; it must be at least %d", len(cfg.Secret), minSecretBytes)
		}
		v.secret = cfg.Secret
		algs = append(algs, jwt.SigningMethodHS256.Alg())
	}
	if cfg.PublicKeysPEM != nil {
		keys, err := parsePublicKeys(cfg.PublicKeysPEM)
		if err != nil {
			return nil, fmt.Errorf("public key: %w", err)
		}
		v.keys = keys
		if len(keys.rsa) > 0 {
			algs = append(algs, jwt.SigningMethodRS256.Alg())
		}
		if len(keys.ec) > 0 {
			algs = append(algs, jwt.SigningMethodES256.Alg())
		}
	}
	if len(algs) == 0 {
		return nil, errors.New("no JWT key: set an HS256 secret or a public key")
	}
	v.parser = jwt.NewParser(parserOptions(cfg, algs)...)
	return v, nil
}

func parserOptions(cfg JWTConfig, algs []string) []jwt.ParserOption {
	leeway := cfg.Leeway
	if leeway == 0 {
		leeway = DefaultLeeway
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(algs), jwt.WithJSONNumber(), jwt.WithLeeway(leeway), jwt.WithExpirationRequired(),
	}
	if cfg.Now != nil {
		opts = append(opts, jwt.WithTimeFunc(cfg.Now))
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	return opts
}

// Verify checks a token and returns its claims. Errors wrap
// mutations.ErrUnauthorized and say why, without echoing the token.
func (v *Verifier) Verify(token string) (Claims, error) {
	if len(token) > maxTokenBytes {
		return nil, unauthorized("token longer than %d bytes", maxTokenBytes)
	}
	claims := jwt.MapClaims{}
	if _, err := v.parser.ParseWithClaims(token, claims, v.key); err != nil {
		return nil, unauthorized("%s", reason(err))
	}
	return Claims(claims), nil
}

// Authorize reads "Authorization: Bearer <token>" and verifies it; it is
// an Options.Authorize for package mutations. The principal is Claims.
func (v *Verifier) Authorize(_ context.Context, r *http.Request) (any, error) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if h == "" {
		return nil, unauthorized("missing Authorization: Bearer token")
	}
	if !ok || !strings.EqualFold(scheme, "bearer") || strings.TrimSpace(token) == "" {
		return nil, unauthorized("the Authorization header must be \"Bearer <token>\"")
	}
	return v.Verify(strings.TrimSpace(token))
}

// key returns the keys of the token's algorithm (already checked to be one
// of the configured ones).
func (v *Verifier) key(t *jwt.Token) (any, error) {
	switch t.Method.Alg() {
	case jwt.SigningMethodHS256.Alg():
		if v.secret != nil {
			return v.secret, nil
		}
	case jwt.SigningMethodRS256.Alg():
		if v.keys != nil && len(v.keys.rsa) > 0 {
			set := jwt.VerificationKeySet{}
			for _, k := range v.keys.rsa {
				set.Keys = append(set.Keys, k)
			}
			return set, nil
		}
	case jwt.SigningMethodES256.Alg():
		if v.keys != nil && len(v.keys.ec) > 0 {
			set := jwt.VerificationKeySet{}
			for _, k := range v.keys.ec {
				set.Keys = append(set.Keys, k)
			}
			return set, nil
		}
	}
	return nil, fmt.Errorf("no key for algorithm %s", t.Method.Alg())
}

// reason turns a jwt error into a short reason for the 401 body.
func reason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid) && strings.Contains(err.Error(), "signing method"):
		return "token signed with an algorithm this server does not accept"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "invalid token signature"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "token that no configured key can verify"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token not valid yet"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "token from another issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "token for another audience"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		for _, c := range []string{"exp", "iss", "aud"} {
			if strings.Contains(err.Error(), c+" claim") {
				return "token without the required " + c + " claim"
			}
		}
		return "token without a required claim"
	}
	return "invalid token"
}

func unauthorized(format string, args ...any) error {
	return fmt.Errorf("%w: %s", mutations.ErrUnauthorized, fmt.Sprintf(format, args...))
}
