package main

import (
	"log/slog"
	"slices"
	"strings"
)

// electricHints say what volt offers instead of an Electric setting it
// does not read.
var electricHints = map[string]string{
	"ELECTRIC_POOLED_DATABASE_URL":     "volt makes every connection to DATABASE_URL",
	"ELECTRIC_QUERY_DATABASE_URL":      "volt makes every connection to DATABASE_URL",
	"ELECTRIC_DATABASE_USE_IPV6":       "volt connects as DATABASE_URL's host resolves",
	"ELECTRIC_MANUAL_TABLE_PUBLISHING": "volt always adds synced tables to its publication itself",
	"ELECTRIC_MAX_SHAPES":              "see -max-shapes (VOLT_MAX_SHAPES): volt refuses new shapes past it instead of evicting old ones",
	"ELECTRIC_OTLP_ENDPOINT":           "volt exports no OpenTelemetry traces",
}

// ignoredElectric returns the ELECTRIC_* variables set (non-empty) in
// environ ("KEY=value" entries) that no volt serve setting reads, sorted.
func ignoredElectric(environ []string) []string {
	known := map[string]bool{}
	var c Config
	for _, s := range settings(&c) {
		for _, name := range s.env {
			known[name] = true
		}
	}
	var ignored []string
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "ELECTRIC_") && value != "" && !known[name] && !slices.Contains(ignored, name) {
			ignored = append(ignored, name)
		}
	}
	slices.Sort(ignored)
	return ignored
}

// warnIgnoredElectric logs a warning for each Electric setting in environ
// that volt does not support, so it is not silently dropped.
func warnIgnoredElectric(log *slog.Logger, environ []string) {
	for _, name := range ignoredElectric(environ) {
		attrs := []any{"variable", name}
		if hint := electricHints[name]; hint != "" {
			attrs = append(attrs, "hint", hint)
		}
		log.Warn(name+" is set but volt does not support it: ignored (volt serve -h lists the settings volt reads)", attrs...)
	}
}
