package testenv

import "syscall"

// pgBouncerProcAttr runs pgbouncer as cred (when not nil) and has the
// kernel stop it (SIGTERM: it closes its server connections) when the test
// binary ends, however it ends, so that a binary whose TestMain does not
// call Main leaves no pgbouncer behind. Go sets the parent-death signal
// after switching user, which would otherwise clear it.
func pgBouncerProcAttr(cred *runAs) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if cred != nil {
		a.Credential = &syscall.Credential{Uid: uint32(cred.uid), Gid: uint32(cred.gid)}
	}
	return a
}
