// Package e2e tests the volt binary end to end: it builds cmd/volt, runs it
// against throwaway PostgreSQL clusters and talks to it over HTTP, as
// clients do.
package e2e
