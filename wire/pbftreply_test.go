package wire

import (
	"bytes"
	"testing"
)

// pbftReplyFlagsOffset is the offset of PBFTReply's flags byte: after View, Timestamp,
// ClientID and Replica.
const pbftReplyFlagsOffset = 4 * sizeU64

// PBFT read-only optimization (OSDI '99 §5.1.3): a reply carries ReadOnly and Refused in one
// flags byte, and every combination round-trips. A reply without a refusal keeps the bool
// byte it had before the flag existed (0 or 1), so ordinary replies encode as they did.
func TestPBFTReplyFlagsRoundTrip(t *testing.T) {
	for _, c := range []struct {
		readOnly, refused bool
		flags             byte
	}{
		{false, false, 0x00},
		{true, false, 0x01},
		{false, true, 0x02},
		{true, true, 0x03},
	} {
		in := &PBFTReply{View: 9, Timestamp: 42, ClientID: 7, Replica: 2, ReadOnly: c.readOnly, Refused: c.refused,
			Result: []byte("r"), Auth: Authenticator{Kind: AuthShortMACs, MACs: shortMACs(0x11, 1)}}
		body := AppendPBFTReply(nil, in)
		if len(body) != in.Size() {
			t.Fatalf("%+v: body %d bytes, Size %d", c, len(body), in.Size())
		}
		if got := body[pbftReplyFlagsOffset]; got != c.flags {
			t.Fatalf("readOnly=%v refused=%v: flags byte %#x, want %#x", c.readOnly, c.refused, got, c.flags)
		}
		var out PBFTReply
		if err := DecodePBFTReply(body, &out); err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		if out.ReadOnly != c.readOnly || out.Refused != c.refused || !equal(&out, in) {
			t.Fatalf("%+v: decoded %+v, want %+v", c, out, *in)
		}
		frame := AppendMessageFrame(nil, 0, in)
		f, err := DecodeFrame(frame, 0)
		if err != nil {
			t.Fatal(err)
		}
		var viaFrame PBFTReply
		if err := DecodeMessage(f, &viaFrame); err != nil || !equal(&viaFrame, in) {
			t.Fatalf("%+v: frame round trip: %v %+v", c, err, viaFrame)
		}
	}
}

// Every flag bit besides ReadOnly and Refused is ErrMalformed, so an unknown flag is never
// silently dropped (a later format that adds one fails loudly at an old decoder).
func TestPBFTReplyUnknownFlagBits(t *testing.T) {
	good := AppendPBFTReply(nil, &PBFTReply{ReadOnly: true, Refused: true})
	if err := DecodePBFTReply(good, new(PBFTReply)); err != nil {
		t.Fatalf("known flags rejected: %v", err)
	}
	for bit := 2; bit < 8; bit++ {
		body := bytes.Clone(good)
		body[pbftReplyFlagsOffset] |= 1 << bit
		if err := DecodePBFTReply(body, new(PBFTReply)); err != ErrMalformed {
			t.Fatalf("flags %#x: %v, want ErrMalformed", body[pbftReplyFlagsOffset], err)
		}
	}
}
