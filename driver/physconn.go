package driver

import (
	"io"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/stdlib"
)

type connState uint8

const (
	stateInUse connState = iota
	stateIdle
	stateClosed
)

// physConn is one PostgreSQL session.
type physConn struct {
	sc      *stdlib.Conn
	pool    *pool
	expires time.Time

	// guarded by budget.mu
	state  connState
	idleAt time.Time
	lru    connLinks // in budget.idle
	pidle  connLinks // in pool.idle
}

// terminateTimeout bounds how long closing a session waits for the server
// to confirm it ended.
const terminateTimeout = 5 * time.Second

// terminate ends the session and returns once the server has closed it, so
// its slot under the server's max_connections is free again. pgx's own
// Close only sends Terminate and closes the socket; the backend may then
// linger for a moment, and a new session dialled in that moment would make
// the server see one more than the cap.
func (pc *physConn) terminate() {
	pgc := pc.sc.Conn().PgConn()
	if pgc.IsClosed() {
		// pgx closed it after an error or a cancellation; its cleanup
		// (cancel request, Terminate, drain) may still be running.
		waitCleanup(pgc.CleanupDone())
		return
	}
	if pgc.IsBusy() {
		pc.sc.Close()
		waitCleanup(pgc.CleanupDone())
		return
	}
	hc, err := pgc.Hijack()
	if err != nil {
		pc.sc.Close()
		return
	}
	nc := hc.Conn
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(terminateTimeout))
	msg, err := (&pgproto3.Terminate{}).Encode(nil)
	if err != nil {
		return
	}
	if _, err := nc.Write(msg); err != nil {
		return
	}
	// The server closes the socket when the backend exits, after it has
	// released its slot.
	io.Copy(io.Discard, nc)
}

func waitCleanup(done <-chan struct{}) {
	t := time.NewTimer(terminateTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}
