package main

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

const versionUsage = `Usage: volt version

Prints volt's module version, the VCS revision, time and modified state it
was built from, and the Go version. Builds without VCS information (go run,
go test, a build outside the repository) say so.
`

// runVersion is volt version.
func runVersion(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("volt version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, versionUsage) }
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("volt version takes no arguments, got %q", fs.Args())
	}
	fmt.Fprint(stdout, versionText(debug.ReadBuildInfo()))
	return nil
}

// versionText describes the build from debug.ReadBuildInfo's results.
func versionText(bi *debug.BuildInfo, ok bool) string {
	if !ok {
		return fmt.Sprintf("volt (no build information)\ngo       %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	}
	module, version := bi.Main.Path, bi.Main.Version
	if module == "" {
		module = "github.com/voltsync/volt" // go test binaries have no main module path
	}
	if version == "" {
		version = "(devel)"
	}
	vcs := map[string]string{}
	for _, s := range bi.Settings {
		vcs[s.Key] = s.Value
	}
	text := fmt.Sprintf("volt %s\nmodule   %s\n", version, module)
	if rev := vcs["vcs.revision"]; rev != "" {
		state := "clean"
		if vcs["vcs.modified"] == "true" {
			state = "modified (uncommitted changes)"
		}
		text += fmt.Sprintf("revision %s\ntime     %s\ntree     %s\n", rev, vcs["vcs.time"], state)
	} else {
		text += "revision unknown (built without VCS information, e.g. by go run or go test)\n"
	}
	return text + fmt.Sprintf("go       %s %s/%s\n", bi.GoVersion, runtime.GOOS, runtime.GOARCH)
}
