package assert

import "fmt"

// True panics with msg when cond is false. msg should say what must hold, for example
// "wire: body length within MaxFrameBytes".
func True(cond bool, msg string) {
	if !cond {
		panic("invariant violated: " + msg)
	}
}

// Failf panics with a formatted message. Call it inside the branch that detected the
// violation so that its arguments are only evaluated on failure.
func Failf(format string, args ...any) {
	panic("invariant violated: " + fmt.Sprintf(format, args...))
}

// Equal panics when got != want, naming both values.
func Equal[T comparable](got, want T, what string) {
	if got != want {
		Failf("%s: got %v, want %v", what, got, want)
	}
}
