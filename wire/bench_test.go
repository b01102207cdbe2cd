package wire

import (
	"fmt"
	"testing"
)

// benchAppendEntries returns an AppendEntries with n entries of size bytes each.
func benchAppendEntries(n, size int) *AppendEntries {
	m := &AppendEntries{Term: 7, From: 1, To: 2, PrevIndex: 1 << 20, PrevTerm: 7, Commit: 1<<20 - 5, Seq: 99}
	data := make([]byte, n*size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	m.Entries = make([]Entry, n)
	for i := range m.Entries {
		m.Entries[i] = Entry{Term: 7, Type: EntryNormal, Data: data[i*size : (i+1)*size : (i+1)*size]}
	}
	return m
}

var (
	benchEntries = []int{1, 64, 1024}
	benchSizes   = []int{16, 128, 4096}
)

// BenchmarkAppendEntries measures the body codec and the whole frame path (encode with
// CRC, split with CRC check, decode) of AppendEntries batches. Bytes are the entries'
// payload, so MB/s compares with a memory copy of the same data.
func BenchmarkAppendEntries(b *testing.B) {
	for _, n := range benchEntries {
		for _, size := range benchSizes {
			m := benchAppendEntries(n, size)
			payload := int64(n * size)
			body := AppendAppendEntries(nil, m)
			frame := AppendMessageFrame(nil, 0, m)
			prefix := fmt.Sprintf("entries=%d/size=%d", n, size)
			b.Run(prefix+"/op=encode", func(b *testing.B) {
				dst := make([]byte, 0, len(frame))
				b.ReportAllocs()
				b.SetBytes(payload)
				for b.Loop() {
					dst = AppendAppendEntries(dst[:0], m)
				}
			})
			b.Run(prefix+"/op=decode", func(b *testing.B) {
				// Warm the target once: steady state reuses its Entries capacity.
				into := AppendEntries{Entries: make([]Entry, 0, n)}
				b.ReportAllocs()
				b.SetBytes(payload)
				for b.Loop() {
					if err := DecodeAppendEntries(body, &into); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(prefix+"/op=frame-roundtrip", func(b *testing.B) {
				dst := make([]byte, 0, len(frame))
				into := AppendEntries{Entries: make([]Entry, 0, n)}
				b.ReportAllocs()
				b.SetBytes(payload)
				for b.Loop() {
					dst = AppendMessageFrame(dst[:0], 0, m)
					f, _, err := SplitFrame(dst, 0)
					if err != nil {
						b.Fatal(err)
					}
					if err := DecodeAppendEntries(f.Body, &into); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkEncode and BenchmarkDecode cover every message type with its golden sample.
func BenchmarkEncode(b *testing.B) {
	for _, m := range goldenSamples() {
		b.Run("type="+m.Type().String(), func(b *testing.B) {
			dst := make([]byte, 0, m.Size())
			b.ReportAllocs()
			b.SetBytes(int64(m.Size()))
			for b.Loop() {
				dst = m.AppendBody(dst[:0])
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, m := range goldenSamples() {
		b.Run("type="+m.Type().String(), func(b *testing.B) {
			body := m.AppendBody(nil)
			into := NewMessage(m.Type())
			if err := into.Decode(body); err != nil { // warm: later decodes reuse capacity
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if err := into.Decode(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkScanner splits a buffer of 64 small frames, as OnTraffic does per socket read.
func BenchmarkScanner(b *testing.B) {
	var buf []byte
	for range 64 {
		buf = AppendMessageFrame(buf, 0, &AppendEntriesReply{Term: 3, Success: true, MatchIndex: 77})
	}
	var s Scanner
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		s.Reset(buf)
		for {
			_, ok, err := s.Next()
			if err != nil {
				b.Fatal(err)
			}
			if !ok {
				break
			}
		}
	}
}
