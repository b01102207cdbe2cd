package server

import "testing"

func TestParseByzantineMode(t *testing.T) {
	for _, m := range []ByzantineMode{ByzantineNone, ByzantineSilent, ByzantineEquivocate, ByzantineBadDigest, ByzantineBadMAC} {
		got, err := ParseByzantineMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseByzantineMode(%q) = %v, %v", m.String(), got, err)
		}
	}
	if m, err := ParseByzantineMode(""); err != nil || m != ByzantineNone {
		t.Errorf(`"" should be honest: %v %v`, m, err)
	}
	if _, err := ParseByzantineMode("evil"); err == nil {
		t.Error("unknown mode accepted")
	}
}
