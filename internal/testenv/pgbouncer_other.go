//go:build !linux

package testenv

import "syscall"

// pgBouncerProcAttr: without Linux's parent-death signal, only Main stops
// the test PgBouncer, and as root it cannot be started (pgbouncer refuses
// to run as root, and switching user here is Linux-only).
func pgBouncerProcAttr(cred *runAs) *syscall.SysProcAttr {
	return nil
}
