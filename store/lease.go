package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrBadLease: a LeaseRequest breaks the rules (see Leaser.Lease). The
// message says which field is wrong.
var ErrBadLease = errors.New("invalid lease request")

// A Leaser is a Store that processes can share a budget through: each
// process (a holder) leases a part of a server's connection budget, and a
// grant never takes the live holders' leases past the budget in force: a
// holder is granted only what the others leave. Leases granted before a
// holder joined with a smaller budget stay until their holders shrink
// them (nothing is cut from under a holder), so for that while the leases
// may add up to more than the new budget; a holder should give back down
// to the budget in force (Lease.Budget) as soon as it learns it. It is
// what the tenantsql driver's fleet budget (driver.WithFleetBudget) runs
// on. *Redis is a Leaser; the file and memory stores, which no fleet of
// processes on several hosts shares, are not.
//
// A lease lasts TTL from the call that granted it. A holder renews it
// before then; one that stops (crashed, cut off from the store) loses it
// at expiry, and its share goes to the others. Shrinking is the holder's
// move: a lease is never cut below what the holder still asks for and held
// before, so the sum of leases bounds what the holders use as long as each
// uses no more than its lease, and gives slots back (closes sessions)
// before it asks for less. The bound holds on the store's word: a Redis
// that fails over to a replica that had not received the last grants
// (replication is asynchronous) forgets them, and the store expires
// leases on its own clock, which must run at the holders' rate (keep it
// synchronised, slewed rather than stepped).
type Leaser interface {
	// Lease asks for req.Want slots of req.Server's budget for
	// req.Holder, and renews the holder's lease, for req.TTL. The grant
	// is min(Want, free − reserve), where free is the budget less what
	// the other live holders are granted, the budget is the least
	// req.Budget any live holder gave (so a process configured with a
	// larger one cannot raise it), and the reserve is a slot for each
	// other live holder that holds none, up to a tenth of the budget (at
	// least one). A grant is never less than min(Want, 1, free), so a
	// holder may take the last free slot, nor less than min(Want, the
	// holder's current grant). The reserve lets an idle process serve
	// its first query at once while a busy one has the rest, and while a
	// crashed one's lease runs out; Fair, computed over the budget less
	// the reserve, tells a holder that took those slots before the idle
	// ones joined to give them back. Want 0 keeps the holder known with
	// nothing granted.
	Lease(ctx context.Context, req LeaseRequest) (Lease, error)
	// ReleaseLease gives holder's lease on server back at once, as a
	// holder that stops cleanly does, so that the others need not wait
	// for it to expire. Releasing a lease that is not there is not an
	// error.
	ReleaseLease(ctx context.Context, server, holder string) error
}

// A LeaseRequest asks a Leaser for a share of a server's budget.
type LeaseRequest struct {
	// Server names the budget shared: the tenantsql driver gives the
	// server's canonical host:port.
	Server string
	// Holder names the process (or the budget within it) that holds the
	// lease; each must be unique among those that share Server, and the
	// same across its renewals.
	Holder string
	// Want is how many slots the holder asks for (0 or more).
	Want int
	// Budget is the holder's idea of the whole budget (1 or more).
	Budget int
	// TTL is how long the lease lasts if not renewed (at least a
	// millisecond).
	TTL time.Duration
}

// A Lease is what a Leaser granted.
type Lease struct {
	// Granted is how many slots the holder may use until Expires.
	Granted int
	// Budget is the budget in force: the least any live holder gave.
	Budget int
	// Fair is the holder's share of Budget, less the reserve for the
	// holders that hold none, when it is divided max-min fairly among
	// the demands (Want) of every live holder: a holder granted more
	// than Fair holds slots that another one wants, and should give the
	// difference back as it stops using them.
	Fair int
	// Holders is the number of live holders, this one included.
	Holders int
	// Expires is when the lease ends unless renewed, on this process's
	// clock: the moment the call was made plus TTL. The store, whose own
	// clock alone decides, forgets the grant no earlier than that, so a
	// holder that stops using its slots by Expires never overlaps another
	// holder's grant of them.
	Expires time.Time
}

func (req LeaseRequest) validate() error {
	var why string
	switch {
	case req.Server == "":
		why = "Server is empty: name the server whose budget is shared"
	case req.Holder == "":
		why = "Holder is empty: give each process a unique name"
	case req.Want < 0:
		why = fmt.Sprintf("Want is %d: want 0 or more", req.Want)
	case req.Budget < 1:
		why = fmt.Sprintf("Budget is %d: want 1 or more", req.Budget)
	case req.TTL < time.Millisecond:
		why = fmt.Sprintf("TTL is %v: want a millisecond or more", req.TTL)
	default:
		return nil
	}
	return fmt.Errorf("store: lease on server %q for %q: %w: %s", req.Server, req.Holder, ErrBadLease, why)
}
