package store

import (
	"log/slog"
	"time"

	"github.com/tenantsql/tenantsql/keyring"
)

// FileOption configures OpenFile.
type FileOption func(*fileOptions)

type fileOptions struct {
	create bool
	poll   time.Duration
	log    *slog.Logger
	keys   *keyring.Keyring
	plain  bool
}

// WithFileKeys makes the store seal the secret values of every tenant it
// writes with kr's primary key, and open those it reads with any of kr's
// keys (see the package documentation, Secrets at rest). Without it the
// file holds passwords in clear, and a file that holds sealed values
// cannot be written.
func WithFileKeys(kr *keyring.Keyring) FileOption { return func(o *fileOptions) { o.keys = kr } }

// WithFilePlaintextAllowed makes a store with keys read the tenants of a
// file whose secrets are sealed but for theirs, in clear, which it
// otherwise refuses one by one (ErrPlaintext: each is left out, Get
// returns the error, writes carry its record over as it is, the others
// are served): for tenantsql tenants rekey, which seals them (File.Rekey
// reads them in any case). A file so written is not one a process with
// keys wrote: an operator's hand edit, or someone with write access to the
// file but no key; check which before sealing it.
func WithFilePlaintextAllowed(allow bool) FileOption {
	return func(o *fileOptions) { o.plain = allow }
}

// WithFileCreate makes OpenFile treat a missing file as an empty store;
// the file is created by the first write. Without it a missing file is an
// error, so a mistyped path fails at start-up instead of serving no
// tenants.
func WithFileCreate(create bool) FileOption { return func(o *fileOptions) { o.create = create } }

// WithFilePollInterval sets how often the file is checked for changes
// written by other processes (default 1s). Zero or less turns checking
// off. Each check reads the whole file: its size and modification time may
// stay the same across a change.
func WithFilePollInterval(d time.Duration) FileOption { return func(o *fileOptions) { o.poll = d } }

// WithFileLogger sets the logger for problems found while polling (default
// slog.Default()).
func WithFileLogger(l *slog.Logger) FileOption { return func(o *fileOptions) { o.log = l } }

// WithCreate is the former name of WithFileCreate.
//
// Deprecated: Use WithFileCreate, which names the store it configures.
func WithCreate(create bool) FileOption { return WithFileCreate(create) }

// WithPollInterval is the former name of WithFilePollInterval.
//
// Deprecated: Use WithFilePollInterval, which names the store it
// configures.
func WithPollInterval(d time.Duration) FileOption { return WithFilePollInterval(d) }
