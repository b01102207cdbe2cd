package version

import (
	"fmt"
	"runtime/debug"
)

// String returns "TOOL VERSION (commit REV[+dirty], GOVERSION)", with "devel" and
// "unknown" where the build did not record a version or a commit (go run, go test).
func String(tool string) string {
	version, commit, dirty, gover := "devel", "unknown", "", "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		gover = bi.GoVersion
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			version = v
		}
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && len(s.Value) >= 12:
				commit = s.Value[:12]
			case s.Key == "vcs.revision" && s.Value != "":
				commit = s.Value
			case s.Key == "vcs.modified" && s.Value == "true":
				dirty = "+dirty"
			}
		}
	}
	return fmt.Sprintf("%s %s (commit %s%s, %s)", tool, version, commit, dirty, gover)
}
