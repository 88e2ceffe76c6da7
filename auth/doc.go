// Package auth authorises writes to volt's write endpoint (package
// mutations): it verifies bearer JWTs (HS256, RS256, ES256) and applies
// declarative per-table write rules from a JSON file, whose row checks are
// where clauses in volt's subset (package where) with the token's claims as
// typed parameters ($claims.sub).
//
// A Policy combines both and plugs into mutations.Options: Authorize and
// ClientAllowed (the token, and the client ids bound to its sub) and Allow
// (table, operation and columns, before any statement) and Check (rows);
// its methods can also be called from an application's own hooks.
// docs/AUTH.md describes the rules file and the configuration of volt
// serve.
//
// Files: jwt.go and keys.go (token verification), rulesfile.go (the file's
// structure), rules.go (compiling against the catalog), template.go
// ($claims references), predicate.go and values.go (evaluating a check on
// a row), check.go (the rules as an AllowFunc and a CheckFunc), policy.go (Policy, Claims,
// named mutations), read.go and shapetoken.go (read rules and shape
// tokens), subquery.go (subqueries in checks and in requests decided by
// read rules, with RulesOptions.Subqueries).
package auth
