package cli

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// ab builds a revision from git into its own worktree and removes the worktree afterwards.
func TestABBuildsARevisionFromGit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds loadgen and node")
	}
	if err := exec.Command("git", "rev-parse", "--verify", "HEAD").Run(); err != nil {
		t.Skip("not in a git checkout")
	}
	work := t.TempDir()
	s, err := gitBuild(context.Background(), "HEAD", work)
	if err != nil {
		t.Fatal(err)
	}
	gs := s.(*gitSide)
	for _, bin := range []string{"loadgen", "node"} {
		if _, err := os.Stat(filepath.Join(gs.bin, bin)); err != nil {
			t.Errorf("%s not built: %v", bin, err)
		}
	}
	if out, err := exec.Command(filepath.Join(gs.bin, "loadgen"), "help").CombinedOutput(); err != nil {
		t.Errorf("the built loadgen does not run: %v: %s", err, out)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(gs.worktree); !os.IsNotExist(err) {
		t.Errorf("worktree %s left behind (%v)", gs.worktree, err)
	}
	if _, err := gitBuild(context.Background(), "no-such-revision-xyz", t.TempDir()); err == nil {
		t.Error("an unknown revision was accepted")
	}
}
