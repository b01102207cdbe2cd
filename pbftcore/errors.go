package pbftcore

import "errors"

// Reasons Step rejects a message. A rejected message changes no state.
var (
	ErrBadAuthenticator  = errors.New("pbftcore: bad authenticator")
	ErrWrongView         = errors.New("pbftcore: message for another view")
	ErrNotPrimary        = errors.New("pbftcore: sender is not the primary of the view")
	ErrOutsideWindow     = errors.New("pbftcore: sequence number outside the watermarks")
	ErrConflictingDigest = errors.New("pbftcore: another digest already accepted for (view, seq)")
	ErrBadDigest         = errors.New("pbftcore: digest does not match the batch")
	ErrMalformed         = errors.New("pbftcore: malformed message")
	ErrBadProof          = errors.New("pbftcore: proof does not verify")
	ErrBadState          = errors.New("pbftcore: transferred state does not match the certified checkpoint digest")
	ErrBadNewView        = errors.New("pbftcore: NEW-VIEW does not match the recomputed O set")
	ErrStale             = errors.New("pbftcore: stale message")
	ErrBusy              = errors.New("pbftcore: queue full or request in progress")
	ErrReadNotSafe       = errors.New("pbftcore: read-only request refused: a prepared request is not executed yet")
	ErrReadAfterRestart  = errors.New("pbftcore: read-only request refused: restarted from a checkpoint and not yet past its old high watermark")
	ErrUnknownClient     = errors.New("pbftcore: unknown client")
	// ErrNotHolder: the request's timestamp lies outside the live grant of its principal
	// (claim.go): its sender's lease expired, or another client holds the principal.
	ErrNotHolder = errors.New("pbftcore: request outside its principal's live grant")
)
