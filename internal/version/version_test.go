package version

import (
	"strings"
	"testing"
)

func TestStringNamesToolAndCommit(t *testing.T) {
	s := String("node")
	for _, want := range []string{"node ", "(commit ", "go"} {
		if !strings.Contains(s, want) {
			t.Errorf("String = %q, want it to contain %q", s, want)
		}
	}
}
