package pbftcore_test

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/consensusbench/consensusbench/pbftcore"
	"github.com/consensusbench/consensusbench/pbftcore/kvapp"
)

func TestConfigValidation(t *testing.T) {
	kr := pbftcore.NewKeyring([]byte("cfg"), 4, 1)
	base := func() pbftcore.Config {
		return pbftcore.DefaultConfig(1, 4, kr.Replica(1), kvapp.New(), rand.New(rand.NewPCG(1, 1)))
	}
	if _, err := pbftcore.New(base()); err != nil {
		t.Fatalf("default config rejected: %v", err)
	}
	cases := map[string]func(*pbftcore.Config){
		"n below 4":               func(c *pbftcore.Config) { c.N = 3 },
		"id out of range":         func(c *pbftcore.Config) { c.ID = 4 },
		"keys of another":         func(c *pbftcore.Config) { c.Keys = kr.Replica(2) },
		"no app":                  func(c *pbftcore.Config) { c.App = nil },
		"no rand":                 func(c *pbftcore.Config) { c.Rand = nil },
		"window below 2K":         func(c *pbftcore.Config) { c.WindowSize = c.CheckpointInterval },
		"window not multiple":     func(c *pbftcore.Config) { c.WindowSize = 2*c.CheckpointInterval + 1 },
		"window above max":        func(c *pbftcore.Config) { c.WindowSize = pbftcore.MaxWindowSize + c.CheckpointInterval },
		"inflight above window":   func(c *pbftcore.Config) { c.MaxInflightBatches = int(c.WindowSize) + 1 },
		"batch bytes below op":    func(c *pbftcore.Config) { c.MaxBatchBytes = c.MaxOpBytes - 1 },
		"timeout too small":       func(c *pbftcore.Config) { c.RequestTimeoutTicks = 1 },
		"state bound below chunk": func(c *pbftcore.Config) { c.MaxStateBytes = c.MaxStateChunkBytes - 1 },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := base()
			mutate(&cfg)
			if _, err := pbftcore.New(cfg); !errors.Is(err, pbftcore.ErrInvalidConfig) {
				t.Fatalf("want ErrInvalidConfig, got %v", err)
			}
		})
	}
}
