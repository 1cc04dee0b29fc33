package fleetproc

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Proc is the parent's handle on a child process.
type Proc struct {
	Name string

	cmd   *exec.Cmd
	in    io.WriteCloser
	ready chan struct{} // closed at READY
	exit  chan struct{} // closed once the child's output has ended and it has been waited for
	err   error         // why the child ended; read after exit is closed

	mu     sync.Mutex // guards counts and change
	counts Counts
	change chan struct{} // closed, and replaced, at every report
}

// Counts is what a child reported, over its whole life.
type Counts struct {
	OK      int64 // queries answered from the right database by the right tenant's session
	Wrong   int64 // queries answered from another database or session
	TooMany int64 // queries refused with 53300 too_many_connections
	Errors  int64 // other failed queries
	Open    int   // sessions open (the driver's count), at the last report
	Leased  int   // slots of the fleet budget leased, at the last report
	// FellBack: the child's lease expired at some point and it fell back
	// to the fallback share (starved, or the store unreachable), where
	// the fleet's bound no longer holds.
	FellBack bool
	FirstErr string
	Closed   bool // the child closed cleanly (QUIT)
}

func (c Counts) String() string {
	s := fmt.Sprintf("%d answered, %d wrong, %d too many clients, %d other errors", c.OK, c.Wrong, c.TooMany, c.Errors)
	if c.FellBack {
		s += ", fell back to the fallback share"
	}
	if c.FirstErr != "" {
		s += "; first: " + c.FirstErr
	}
	return s
}

// Start runs the current binary again as a child with cfg; it returns
// once the child is ready to load (or has failed). The child's stderr is
// the parent's.
func Start(cfg Config, timeout time.Duration) (*Proc, error) {
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("fleetproc: start %s: %w", cfg.Name, err)
	}
	// A test binary would run its tests without -test.run; Main ends the
	// child before that matters, but this keeps a forgotten Main harmless.
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), envConfig+"="+string(raw))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("fleetproc: start %s: %w", cfg.Name, err)
	}
	outp, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("fleetproc: start %s: %w", cfg.Name, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("fleetproc: start %s: %w", cfg.Name, err)
	}
	p := &Proc{Name: cfg.Name, cmd: cmd, in: in, ready: make(chan struct{}), exit: make(chan struct{}), change: make(chan struct{})}
	go p.read(outp)
	select {
	case <-p.ready:
		return p, nil
	case <-p.exit:
		return nil, fmt.Errorf("fleetproc: %s ended before it was ready: %v", cfg.Name, p.err)
	case <-time.After(timeout):
		p.Kill()
		return nil, fmt.Errorf("fleetproc: %s not ready after %v", cfg.Name, timeout)
	}
}

func (p *Proc) read(r io.Reader) {
	defer close(p.exit)
	ready := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		p.mu.Lock()
		switch f[0] {
		case "READY":
			if !ready {
				ready = true
				close(p.ready)
			}
		case "P":
			if len(f) == 5 {
				p.counts.OK, _ = strconv.ParseInt(f[1], 10, 64)
				p.counts.Open, _ = strconv.Atoi(f[2])
				p.counts.Leased, _ = strconv.Atoi(f[3])
				p.counts.FellBack = p.counts.FellBack || f[4] == "1"
			}
		case "E":
			if len(f) >= 2 && f[1] == "toomany" {
				p.counts.TooMany++
			} else {
				p.counts.Errors++
			}
			if p.counts.FirstErr == "" {
				p.counts.FirstErr = p.Name + ": " + line
			}
		case "W":
			p.counts.Wrong++
			if p.counts.FirstErr == "" {
				p.counts.FirstErr = p.Name + ": wrong answer (tenant, database, application_name): " + line
			}
		case "CLOSED":
			p.counts.Closed = true
		}
		close(p.change)
		p.change = make(chan struct{})
		p.mu.Unlock()
	}
	if err := sc.Err(); err != nil {
		// Wait must not find output left in the pipe: drain it.
		io.Copy(io.Discard, r)
		p.err = err
	}
	if err := p.cmd.Wait(); err != nil {
		p.err = err
	}
}

// Counts returns what the child has reported so far.
func (p *Proc) Counts() Counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts
}

// Load has the child run n workers from now on (0 stops its load).
func (p *Proc) Load(n int) error {
	_, err := fmt.Fprintf(p.in, "LOAD %d\n", n)
	return err
}

// WaitFor returns once cond holds of the child's counts, or fails when
// timeout passes or the child ends first. timeout only catches a hang.
func (p *Proc) WaitFor(what string, cond func(Counts) bool, timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		p.mu.Lock()
		c, change := p.counts, p.change
		p.mu.Unlock()
		if cond(c) {
			return nil
		}
		select {
		case <-change:
		case <-p.exit:
			return fmt.Errorf("%s ended (%v) while waiting for %s; it had %v", p.Name, p.err, what, p.Counts())
		case <-deadline:
			return fmt.Errorf("%s: waited %v for %s; it has %v", p.Name, timeout, what, p.Counts())
		}
	}
}

// Kill ends the child at once with SIGKILL, as a crash would, and waits
// for it to be gone.
func (p *Proc) Kill() error {
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	<-p.exit
	return nil
}

// Close asks the child to end its load and close its connector, which
// gives its lease back, and waits for it to exit; after timeout it kills
// it and says so. A child that had ended on its own, or ended without
// closing cleanly, is an error.
func (p *Proc) Close(timeout time.Duration) error {
	fmt.Fprintln(p.in, "QUIT")
	select {
	case <-p.exit:
		if p.err != nil {
			return fmt.Errorf("%s: %w", p.Name, p.err)
		}
		if !p.Counts().Closed {
			return fmt.Errorf("%s ended without closing its connector", p.Name)
		}
		return nil
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("%s did not close within %v: killed", p.Name, timeout)
	}
}

// Pid is the child's process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }
