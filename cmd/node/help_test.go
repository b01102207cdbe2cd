package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"testing"

	"github.com/spf13/pflag"

	"github.com/consensusbench/consensusbench/internal/textdiff"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the golden files in testdata/")

// helpGolden is `node --help` as a transcript, the shape of loadgen's testdata/help.txt: a
// comment, the command, then exactly what it printed.
const helpGolden = "testdata/help.txt"

// TestHelpGolden compares `node --help` with testdata/help.txt, so a change to a flag, its
// default or its text shows up as a diff in review. After a deliberate change,
// go test ./cmd/node -run HelpGolden -rewrite rewrites the file; read its diff.
func TestHelpGolden(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"--help"}, &out, &errOut)
	if !errors.Is(err, pflag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	if errOut.Len() != 0 {
		t.Errorf("--help wrote to stderr: %q", errOut.String())
	}
	got := "# node --help (go test ./cmd/node -run HelpGolden -rewrite rewrites this file)\n$ node --help\n" + out.String()
	if *rewrite {
		if err := os.WriteFile(helpGolden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(helpGolden)
	if err != nil {
		t.Fatalf("%v (go test ./cmd/node -run HelpGolden -rewrite writes it)", err)
	}
	if got != string(want) {
		t.Errorf("node --help differs from %s (go test ./cmd/node -run HelpGolden -rewrite to accept):\n%s", helpGolden, textdiff.FirstLine(string(want), got))
	}
}
