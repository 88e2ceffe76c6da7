package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// TokenSource gives the bearer token of each request ("Authorization:
// Bearer <token>"); it is called before every request, so it should
// cache.
//
// When the server answers 401, a TokenSource that also has a method
// Invalidate(token string) is told that token was refused and asked for a
// token again, once: the request is sent again with the new token if it
// differs. A second 401 is returned (for a shape, as *Error; for a
// Writer, as *UnauthorizedError). RefreshingToken works that way.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

// StaticToken is a TokenSource that always gives the same token.
type StaticToken string

// Token implements TokenSource.
func (t StaticToken) Token(context.Context) (string, error) { return string(t), nil }

// TokenFunc adapts a function to a TokenSource; it is called before every
// request.
type TokenFunc func(ctx context.Context) (string, error)

// Token implements TokenSource.
func (f TokenFunc) Token(ctx context.Context) (string, error) { return f(ctx) }

// RefreshingToken is a TokenSource that fetches a token when it has none,
// when the token has expired, and after the server refused it (401).
// Concurrent requests share one fetch.
type RefreshingToken struct {
	fetch func(ctx context.Context) (string, time.Time, error)

	mu     sync.Mutex
	token  string
	expiry time.Time
}

// NewRefreshingToken returns a RefreshingToken that gets its tokens from
// fetch, along with their expiry (the zero time for a token that does not
// expire). A token is fetched again 10 seconds before it expires.
func NewRefreshingToken(fetch func(ctx context.Context) (token string, expiry time.Time, err error)) *RefreshingToken {
	return &RefreshingToken{fetch: fetch}
}

// Token implements TokenSource.
func (r *RefreshingToken) Token(ctx context.Context) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.token != "" && (r.expiry.IsZero() || time.Until(r.expiry) > 10*time.Second) {
		return r.token, nil
	}
	tok, exp, err := r.fetch(ctx)
	if err != nil {
		return "", err
	}
	r.token, r.expiry = tok, exp
	return tok, nil
}

// Invalidate drops token, which the server refused: the next Token
// fetches a new one. A token other than the current one is ignored (a
// concurrent request already refreshed it).
func (r *RefreshingToken) Invalidate(token string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.token == token {
		r.token = ""
	}
}

// errToken marks an error of the TokenSource, which is not retried.
var errToken = errors.New("client: TokenSource")

// authorizer sends requests with the headers and bearer token of a Client.
type authorizer struct {
	httpClient *http.Client
	headers    http.Header
	tokens     TokenSource
}

// do sends the request that newReq builds, with the headers and token;
// after a 401 it refreshes the token (see TokenSource) and sends a new
// request once more.
func (a authorizer) do(ctx context.Context, newReq func() (*http.Request, error)) (*http.Response, error) {
	resp, tok, err := a.send(ctx, newReq)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || a.tokens == nil {
		return resp, err
	}
	inv, ok := a.tokens.(interface{ Invalidate(token string) })
	if !ok {
		return resp, nil
	}
	inv.Invalidate(tok)
	fresh, err := a.tokens.Token(ctx)
	if err != nil {
		resp.Body.Close()
		return nil, fmt.Errorf("%w: %w", errToken, err)
	}
	if fresh == tok {
		return resp, nil
	}
	resp.Body.Close()
	resp, _, err = a.send(ctx, newReq)
	return resp, err
}

// send sends one request and returns the token it carried.
func (a authorizer) send(ctx context.Context, newReq func() (*http.Request, error)) (*http.Response, string, error) {
	req, err := newReq()
	if err != nil {
		return nil, "", err
	}
	for k, vs := range a.headers {
		if _, set := req.Header[k]; !set {
			req.Header[k] = append([]string(nil), vs...)
		}
	}
	var tok string
	if a.tokens != nil {
		if tok, err = a.tokens.Token(ctx); err != nil {
			return nil, "", fmt.Errorf("%w: %w", errToken, err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	hc := a.httpClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	return resp, tok, err
}
