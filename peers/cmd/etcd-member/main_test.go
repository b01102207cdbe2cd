package main

import (
	"errors"
	"strings"
	"testing"
)

func TestFlags(t *testing.T) {
	ok := []string{"--name", "n1", "--data-dir", t.TempDir(), "--peer-addr", "127.0.0.1:2380", "--client-addr", "127.0.0.1:2379",
		"--initial-cluster", "n1=http://127.0.0.1:2380"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{ok[2:], "--name is required"},
		{append(append([]string{}, ok...), "--log-level", "loud"), `--log-level "loud"`},
		{append(append([]string{}, ok[:8]...), "--initial-cluster", "n2=http://127.0.0.1:2380"), "does not list member"},
		{append(append([]string{}, ok[:6]...), "--client-addr", "nohost", "--initial-cluster", "n1=http://127.0.0.1:2380"), `--client-addr "nohost": want host:port`},
		{append(append([]string{}, ok...), "extra"), "unexpected arguments"},
		{[]string{"--bogus"}, "unknown flag"},
	} {
		err := run(c.args)
		var ue usageError
		if err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want a usage error naming %q", c.args, err, c.want)
		}
	}
}
