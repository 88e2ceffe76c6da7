package server

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/voltsync/volt/auth"
	"github.com/voltsync/volt/httpapi"
)

// mountReadAuth turns on read authorisation when a rules file is given:
// requests without the API secret are decided by the read rules, and with
// a JWT key, POST /v1/shape-token issues shape tokens.
func mountReadAuth(srv *httpapi.Server, cfg Config, verifier *auth.Verifier, rules *auth.Rules, log *slog.Logger) error {
	srv.Config.AuthorizedCachePublic = cfg.AuthorizedCachePublic
	if rules == nil {
		if cfg.Secret == "" {
			log.Warn("GET /v1/shape serves every table to every client: no -secret and no -rules (docs/AUTH.md)")
		}
		return nil
	}
	policy := &auth.ReadPolicy{Verifier: verifier, Rules: rules}
	srv.ReadAuth = policy
	if verifier == nil {
		log.Info("GET /v1/shape applies the read rules to anonymous requests (no JWT key is configured); the API secret reads everything")
		return nil
	}
	secret := cfg.AuthJWTSecret
	if secret == "" {
		secret = cfg.Secret
	}
	tokens, err := auth.NewShapeTokens(auth.DeriveShapeTokenKey(secret), cfg.ShapeTokenTTL, nil)
	if err != nil {
		return err
	}
	policy.Tokens = tokens
	srv.ShapeTokens = policy.TokenHandler()
	cache := "private"
	if cfg.AuthorizedCachePublic {
		cache = "public with Vary: Authorization"
	}
	log.Info("GET /v1/shape requires a valid token and applies the read rules; the API secret reads everything; POST /v1/shape-token issues shape tokens", "authorized_cache", cache)
	if secret == "" {
		log.Info("shape tokens are signed with a random key: they become invalid when volt restarts")
	}
	return nil
}

// newVerifier builds the bearer-token verifier from the configuration; nil
// when no JWT key is set.
func newVerifier(cfg Config) (*auth.Verifier, error) {
	if cfg.AuthJWTSecret == "" && cfg.AuthJWTPublicKey == "" {
		return nil, nil
	}
	jc := auth.JWTConfig{Issuer: cfg.AuthIssuer, Audience: cfg.AuthAudience}
	if cfg.AuthJWTSecret != "" {
		jc.Secret = []byte(cfg.AuthJWTSecret)
	}
	if pemText := cfg.AuthJWTPublicKey; pemText != "" {
		if !strings.HasPrefix(strings.TrimSpace(pemText), "-----BEGIN") {
			b, err := os.ReadFile(pemText)
			if err != nil {
				return nil, fmt.Errorf("JWT public key: %w", err)
			}
			pemText = string(b)
		}
		jc.PublicKeysPEM = []byte(pemText)
	}
	v, err := auth.NewVerifier(jc)
	if err != nil {
		return nil, fmt.Errorf("JWT configuration: %w", err)
	}
	return v, nil
}
