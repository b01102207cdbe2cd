package main

import (
	"bytes"
	"strings"
	"testing"
)

// The flags speak loadgen's language and refuse the old meaning of --rate by name; all of
// this is checked before anything needs root.
func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--rate", "10gbit"}, "--link-rate"},
		{[]string{"--mode", "sideways"}, "want open or closed"},
		{[]string{"--load-rate", "100"}, "unknown flag: --load-rate"},
	} {
		var out bytes.Buffer
		if code := run(tc.args, &out, &out); code != 2 || !strings.Contains(out.String(), tc.want) {
			t.Errorf("%v: exit %d, output %q; want exit 2 saying %q", tc.args, code, out.String(), tc.want)
		}
	}
	var out bytes.Buffer
	run([]string{"--help"}, &out, &out)
	for _, flag := range []string{"--link-rate", "--rate", "--mode", "--pipeline", "--batch", "--quiet"} {
		if !strings.Contains(out.String(), flag+" ") {
			t.Errorf("--help does not list %s:\n%s", flag, out.String())
		}
	}
}
