package auth

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/voltsync/volt"
	"github.com/voltsync/volt/mutations"
)

// Claims are a verified token's claims: the principal of a request.
// Numbers are json.Number.
type Claims map[string]any

// ClaimsFrom returns the claims of the request that ctx belongs to (nil
// for an anonymous request); for named mutations and Check hooks.
func ClaimsFrom(ctx context.Context) Claims { return asClaims(mutations.Principal(ctx)) }

// Subject returns the sub claim ("" when absent or not a string).
func (c Claims) Subject() string {
	s, _ := c["sub"].(string)
	return s
}

// lookup follows path through nested objects; nil when absent.
func (c Claims) lookup(path []string) any {
	var v any = map[string]any(c)
	for _, name := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[name]
	}
	return v
}

func asClaims(principal any) Claims {
	switch p := principal.(type) {
	case Claims:
		return p
	case map[string]any:
		return p
	}
	return nil
}

// Policy is volt's authorisation: a Verifier for bearer JWTs and Rules for
// writes. Its Authorize and Check methods have the signatures of
// mutations.Options' hooks, so an application can call them from its own.
// A nil Verifier leaves requests anonymous; nil Rules leave the handler's
// default write policy in place (see Options).
type Policy struct {
	Verifier *Verifier
	Rules    *Rules
}

// Authorize verifies the request's bearer token; without a Verifier the
// request is anonymous (nil principal).
func (p *Policy) Authorize(ctx context.Context, r *http.Request) (any, error) {
	if p.Verifier == nil {
		return nil, nil
	}
	return p.Verifier.Authorize(ctx, r)
}

// Allow decides a mutation's table, operation and columns with the Rules
// before anything runs. Without Rules it refuses everything.
func (p *Policy) Allow(ctx context.Context, principal any, m volt.Mutation) error {
	if p.Rules == nil {
		return forbidden("no write rules are loaded")
	}
	return p.Rules.Allow(ctx, principal, m)
}

// ClientAllowed binds client ids to the token's subject: with a Verifier,
// a request may use the client_id equal to its sub claim or starting with
// the sub claim and a colon ("alice", "alice:tab-1"), the ids whose
// receipts the same token reads. Without a Verifier every client_id is
// allowed (requests are anonymous).
func (p *Policy) ClientAllowed(_ context.Context, principal any, clientID string) error {
	if p.Verifier == nil {
		return nil
	}
	sub := asClaims(principal).Subject()
	if sub == "" {
		return forbidden("this token has no sub claim: client ids are bound to the token's subject")
	}
	if !OwnsClientID(sub, clientID) {
		return forbidden("client_id is not bound to this token's subject: use %q or %q", sub, sub+":<anything>")
	}
	return nil
}

// OwnsClientID reports whether clientID belongs to the subject sub: it is
// sub, or starts with sub and a colon.
func OwnsClientID(sub, clientID string) bool {
	return sub != "" && (clientID == sub || strings.HasPrefix(clientID, sub+":"))
}

// Check authorises a row mutation with the Rules. Without Rules it refuses
// everything: a Check that is set decides every table.
func (p *Policy) Check(ctx context.Context, principal any, m volt.Mutation, oldRow, newRow map[string]any) error {
	if p.Rules == nil {
		return forbidden("no write rules are loaded")
	}
	return p.Rules.Check(ctx, principal, m, oldRow, newRow)
}

// Options returns base with the policy's hooks set: Authorize and
// ClientAllowed when there is a Verifier, Allow and Check when there are
// Rules. Hooks already set in base are replaced; to combine, call the
// Policy's methods from your own hooks.
func (p *Policy) Options(base mutations.Options) mutations.Options {
	if p.Verifier != nil {
		base.Authorize = p.Authorize
		base.ClientAllowed = p.ClientAllowed
	}
	if p.Rules != nil {
		base.Allow = p.Allow
		base.Check = p.Check
		base.CheckUsesTx = p.Rules.CheckUsesTx
	}
	return base
}

// Named wraps a named mutation so that it runs only when the rules'
// allow-list has name (always, without Rules); otherwise the client
// transaction is rejected as forbidden.
func (p *Policy) Named(name string, fn mutations.NamedFunc) mutations.NamedFunc {
	return func(ctx context.Context, tx pgx.Tx, args json.RawMessage) error {
		if p.Rules != nil && !p.Rules.MutationAllowed(name) {
			return forbidden("mutation %q is not allowed", name)
		}
		return fn(ctx, tx, args)
	}
}

// Register registers fn on h under name, guarded by the allow-list (Named).
// Named mutations registered on h directly bypass the allow-list.
func (p *Policy) Register(h *mutations.Handler, name string, fn mutations.NamedFunc) {
	h.Register(name, p.Named(name, fn))
}
