package auth

import (
	"net/http"

	"github.com/voltsync/volt/httpapi"
)

// Principal implements httpapi.PrincipalNamer: the subject (sub claim) of
// the request's user JWT or shape token, "" for an anonymous request or a
// token without a subject. httpapi counts per-principal shape quotas by
// it, and only asks for requests this policy has accepted.
func (p *ReadPolicy) Principal(r *http.Request) string {
	claims, _, err := p.principal(r)
	if err != nil {
		return ""
	}
	return claims.Subject()
}

var _ httpapi.PrincipalNamer = (*ReadPolicy)(nil)
