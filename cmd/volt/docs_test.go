package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Flags and environment variables the docs name that volt serve does not
// have, each with its owner.
var (
	docsOtherFlags = map[string]string{
		"-assets": "volt demo", "-dir": "volt demo",
		"-quick": "volt bench", "-only": "volt bench", "-out": "volt bench", "-cpuprofile": "volt bench",
		"-yes": "volt reset", "-h": "every command's help", "--help": "every command's help",
		"-db": "examples/todo-local", "-url": "examples",
		"--prefix": "npm", "--test": "node", "--test-force-exit": "node", "-run": "go test", "-v": "go test",
		"-c": "psql", "-d": "curl", "-i": "curl", "-s": "curl", "-t": "nginx", "-y": "apt-get",
	}
	docsOtherEnv = map[string]string{
		"VOLT_ARTIFACTS": "the demo's browser test",
		"VOLT_URL":       "the compatibility suite (compat/)",
	}
	// docsIgnoredElectric are Electric settings the docs mention that volt
	// serve does not read; it logs each as ignored when set.
	docsIgnoredElectric = []string{"ELECTRIC_OTLP_ENDPOINT", "ELECTRIC_POOLED_DATABASE_URL", "ELECTRIC_QUERY_DATABASE_URL", "ELECTRIC_MANUAL_TABLE_PUBLISHING", "ELECTRIC_MAX_SHAPES"}
)

var (
	docsFlagRE = regexp.MustCompile("(?m)(?:^|[\\s(\\[`/\"'])(--?[a-z][a-z0-9]*(?:-[a-z0-9]+)*)\\b(?:[^\\w.-]|$)")
	docsEnvRE  = regexp.MustCompile(`\b(VOLT_[A-Z0-9_]*[A-Z0-9]|ELECTRIC_[A-Z0-9_]*[A-Z0-9]|DATABASE_URL)\b`)
)

// Every flag and environment variable the docs name exists.
func TestDocsNameOnlyRealSettings(t *testing.T) {
	c, _, errOut := cliFor(nil)
	if err := run(context.Background(), []string{"serve", "-h"}, c); err != nil {
		t.Fatal(err)
	}
	help := errOut.String()
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../../README.md", "../../deploy/nginx/README.md")
	seen := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		name := strings.TrimPrefix(f, "../../")
		for _, m := range docsFlagRE.FindAllStringSubmatch(text, -1) {
			seen++
			flag := m[1]
			if docsOtherFlags[flag] != "" {
				continue
			}
			// volt serve -h lists "-name"; --name is the same flag.
			if !strings.Contains(help, "\n  -"+strings.TrimLeft(flag, "-")+"\n") {
				t.Errorf("%s names flag %s, which volt serve -h does not list", name, flag)
			}
		}
		for _, m := range docsEnvRE.FindAllStringSubmatch(text, -1) {
			seen++
			env := m[1]
			switch {
			case docsOtherEnv[env] != "":
			case slices.Contains(docsIgnoredElectric, env):
			case strings.Contains(help, "env: "+env+"\n") || strings.Contains(help, "env: "+env+", ") ||
				strings.Contains(help, ", "+env+"\n") || strings.Contains(help, ", "+env+", "):
			default:
				t.Errorf("%s names environment variable %s, which volt serve -h does not list", name, env)
			}
		}
	}
	if seen < 100 {
		t.Fatalf("found only %d flags and variables in the docs: is the pattern broken?", seen)
	}
	for _, env := range docsIgnoredElectric {
		if !slices.Contains(ignoredElectric([]string{env + "=1"}), env) || strings.Contains(help, env) {
			t.Errorf("%s is listed as ignored but volt serve reads it or does not report it", env)
		}
	}
}
